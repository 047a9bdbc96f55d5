"""Three PostgreSQL servers forming a pgraft cluster the way the seed README says.

One scenario per test, each on its own fresh servers: the Quick Start and Cluster
Management flows typed through psql, the monitoring dashboard, replication of an
append made on a follower, failover after ``pg_ctl stop -m immediate`` of the
leader's server, rejoin, SIGKILL of the Python node, reload of the timeouts, and a
full-cluster crash and restart. Every acknowledged append is recorded and checked
for on every node at the end: an acknowledged entry must never be lost.
"""

from __future__ import annotations

import json
import signal

import pytest

from .pgharness import ELECTION_MS, Acked, Cluster, three, wait_for

pytestmark = pytest.mark.pg

DASHBOARD = """
WITH cluster_status AS (
    SELECT * FROM pgraft_get_cluster_status()
),
node_info AS (
    SELECT * FROM pgraft_get_nodes()
),
log_stats AS (
    SELECT * FROM pgraft_log_get_stats()
)
SELECT
    cs.node_id, cs.current_term, cs.leader_id, cs.state, cs.num_nodes,
    ni.address, ni.port, ni.is_leader,
    ls.log_size, ls.last_index, ls.commit_index, ls.last_applied
FROM cluster_status cs
LEFT JOIN node_info ni ON cs.node_id = ni.node_id
LEFT JOIN log_stats ls ON true;
"""


def test_quick_start_dashboard_and_follower_append(cluster: Cluster) -> None:
    servers = three(cluster)
    leader = cluster.wait_leader()
    for s in servers:
        assert s.worker_state() == "RUNNING"
        nodes = s.rows("SELECT node_id, address, port, is_leader FROM pgraft_get_nodes()")
        assert sorted(int(n[0]) for n in nodes) == [1, 2, 3]
        assert [int(n[0]) for n in nodes if n[3] == "t"] == [leader]
        ports = {int(n[0]): int(n[2]) for n in nodes}
        assert ports == {x.node_id: x.raft_port for x in servers}
        assert s.scalar("SELECT pgraft_is_leader()") == ("t" if s.node_id == leader else "f")
        row = s.rows(DASHBOARD)
        assert len(row) == 1
        node_id, term, leader_id, state, num_nodes, address, port, is_leader = row[0][:8]
        log_size, last_index, commit_index, last_applied = map(int, row[0][8:])
        assert (int(node_id), int(leader_id), int(num_nodes)) == (s.node_id, leader, 3)
        assert int(term) >= 1 and address == "127.0.0.1" and int(port) == s.raft_port
        assert state == ("leader" if s.node_id == leader else "follower")
        assert is_leader == ("t" if s.node_id == leader else "f")
        assert last_index >= commit_index >= last_applied >= 1 and log_size >= 1
    terms = {s.scalar("SELECT pgraft_get_term()") for s in servers}
    assert len(terms) == 1

    follower = next(s for s in servers if s.node_id != leader)
    acked = Acked()
    index = acked.append(follower, '{"action": "user_created", "user_id": 123}')
    for s in servers:
        assert s.scalar(f"SELECT pgraft_log_commit({index})") == "t"
        assert s.scalar(f"SELECT pgraft_log_apply({index})") == "t"
        assert s.rows(f"SELECT index, data FROM pgraft_log_read({index}, {index})") == [
            [str(index), '{"action": "user_created", "user_id": 123}']
        ]
        assert int(s.scalar("SELECT pgraft_log_sync_with_leader()")) >= index
    # the replicated key-value map is linearizable from any node
    assert int(follower.scalar("SELECT pgraft_kv_put('colour', 'blue')")) > index
    for s in servers:
        assert s.scalar("SELECT pgraft_kv_get('colour')") == "blue"


def test_leader_crash_failover_rejoin_and_no_lost_appends(cluster: Cluster) -> None:
    servers = three(cluster)
    acked = Acked()
    for i, s in enumerate(servers * 3):
        acked.append(s, f"before-{i}")
    old = cluster.servers[cluster.wait_leader()]
    old_term = int(old.scalar("SELECT pgraft_get_term()"))

    old.stop("immediate")
    survivors = [s for s in servers if s is not old]
    # a new leader within three election timeouts, as seen from SQL on the survivors
    new_leader = cluster.wait_leader(survivors, 3 * ELECTION_MS / 1000, exclude=old.node_id)
    assert int(survivors[0].scalar("SELECT pgraft_get_term()")) > old_term
    for i, s in enumerate(survivors * 2):
        acked.append(s, f"during-{i}")

    old.start()
    old.wait_running()
    wait_for("old leader follows the new one", lambda: old.leader() == new_leader)
    assert old.scalar("SELECT pgraft_is_leader()") == "f"
    acked.append(old, "after-rejoin")
    for s in servers:
        acked.check(s)


def test_full_cluster_crash_and_restart_keeps_every_acked_entry(cluster: Cluster) -> None:
    servers = three(cluster)
    acked = Acked()
    for i, s in enumerate(servers * 4):
        acked.append(s, f"entry-{i}")
    last = max(acked.entries)
    for s in servers:  # the seed's "Cluster Restart": sync with the leader, then restart
        assert int(s.scalar("SELECT pgraft_log_sync_with_leader()")) >= last
    for s in servers:
        s.stop("immediate")
    for s in servers:
        s.start()
    for s in servers:
        s.wait_running()
    cluster.wait_leader()
    acked.append(servers[1], "after-restart")
    for s in servers:
        acked.check(s)
        assert s.scalar("SELECT num_nodes FROM pgraft_get_cluster_status()") == "3"


def test_sigkill_of_node_process_restarts_and_rejoins(cluster: Cluster) -> None:
    servers = three(cluster)
    leader = cluster.wait_leader()
    victim = next(s for s in servers if s.node_id != leader)
    before = int(victim.scalar("SELECT restarts FROM pgraft_get_worker_info()"))
    pid = cluster.kill_node_process(victim, signal.SIGKILL)

    def restarted() -> bool:
        info = victim.rows("SELECT state, pid, restarts, last_exit FROM pgraft_get_worker_info()")
        state, new_pid, restarts, last_exit = info[0]
        return (
            state == "RUNNING" and new_pid not in ("", str(pid)) and int(restarts) == before + 1
        ) and "signal 9" in last_exit

    wait_for("supervisor restarts the node", restarted)
    wait_for("the restarted node follows the leader", lambda: victim.leader() == leader)
    acked = Acked()
    acked.append(victim, "after-sigkill")
    for s in servers:
        acked.check(s)


def test_reload_of_timeouts_reaches_the_running_node(cluster: Cluster) -> None:
    servers = three(cluster)
    s = servers[0]
    pid = s.node_pid()
    s.psql("ALTER SYSTEM SET pgraft.heartbeat_interval = 150")
    s.psql("ALTER SYSTEM SET pgraft.election_timeout = 1500")
    assert s.scalar("SELECT pg_reload_conf()") == "t"
    wait_for(
        "SHOW reflects the reload", lambda: s.scalar("SHOW pgraft.election_timeout") == "1500ms"
    )
    config = json.loads((s.data / "pgraft" / "node.json").read_text())
    assert (config["heartbeat_ms"], config["election_timeout_ms"]) == (150, 1500)
    wait_for(
        "the node applies the new timeouts",
        lambda: "election_timeout_ms=1500, heartbeat_ms=150" in s.log(),
    )
    assert s.node_pid() == pid  # applied in place, not by a restart
    wait_for(
        "a leader confirmed by a ReadIndex barrier",
        lambda: cluster.leader_everywhere() and s.scalar("SELECT pgraft_log_sync_with_leader()"),
    )
    acked = Acked()
    acked.append(s, "after-reload")
    for x in servers:
        acked.check(x)
