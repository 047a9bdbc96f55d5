"""Membership changes, bad input and interruption, on real PostgreSQL servers.

A fourth server joins through the seed's "Adding a New Node" flow and one member is
removed; a five-server cluster keeps working with two servers down. Bad input (NULLs,
impossible ids and ports, unknown nodes, indexes beyond the log, oversized data,
unprivileged callers, a node of another cluster) must each give a clear error with a
SQLSTATE and leave the cluster as it was. A statement waiting for a commit that cannot
happen gives way to statement_timeout.
"""

from __future__ import annotations

import os
import signal

import pytest

from .pgharness import Acked, Cluster, Server, three, wait_for

pytestmark = pytest.mark.pg


def members(s: Server) -> list[int]:
    return sorted(int(r[0]) for r in s.rows("SELECT node_id FROM pgraft_get_nodes()"))


def wait_members(s: Server, expected: list[int]) -> None:
    wait_for(f"node {s.node_id} to see members {expected}", lambda: members(s) == expected)


def test_add_fourth_server_then_remove_a_member(cluster: Cluster) -> None:
    servers = three(cluster)
    leader = cluster.wait_leader()
    follower = next(s for s in servers if s.node_id != leader)
    acked = Acked()
    acked.append(follower, "before-join")

    new = cluster.add(4)
    new.psql("CREATE EXTENSION IF NOT EXISTS pgraft")
    new.wait_running()
    assert new.scalar("SELECT pgraft_init()") == "t"
    assert follower.scalar(f"SELECT pgraft_add_node(4, '127.0.0.1', {new.raft_port})") == "t"
    everyone = [*servers, new]
    for s in everyone:
        wait_members(s, [1, 2, 3, 4])
    wait_for("node 4 follows the leader", lambda: new.leader() == leader)
    acked.append(new, "from-the-new-node")
    for s in everyone:
        acked.check(s)

    victim = next(s for s in servers if s.node_id not in (leader, follower.node_id))
    assert follower.scalar(f"SELECT pgraft_remove_node({victim.node_id})") == "t"
    remaining = [s for s in everyone if s is not victim]
    expected = sorted(s.node_id for s in remaining)
    for s in remaining:
        wait_members(s, expected)
        assert s.scalar("SELECT num_nodes FROM pgraft_get_cluster_status()") == "3"
    acked.append(new, "after-removal")
    for s in remaining:
        acked.check(s)


def test_bad_input_and_interruptions_leave_the_cluster_alone(cluster: Cluster) -> None:
    servers = three(cluster)
    leader = cluster.wait_leader()
    s = next(x for x in servers if x.node_id != leader)
    acked = Acked()
    acked.append(s, "before-bad-input")
    stats_before = s.scalar("SELECT last_index FROM pgraft_log_get_stats()")

    cases = [
        ("SELECT pgraft_add_node(NULL, '127.0.0.1', 7000)", "22004", "node_id"),
        ("SELECT pgraft_add_node(9, NULL, 7000)", "22004", "address"),
        ("SELECT pgraft_log_append(0, NULL)", "22004", "data"),
        ("SELECT pgraft_remove_node(NULL)", "22004", "node_id"),
        ("SELECT pgraft_add_node(-1, '127.0.0.1', 7000)", "22003", "node_id"),
        (f"SELECT pgraft_add_node(2, '127.0.0.1', {servers[1].raft_port})", "42710", "2"),
        ("SELECT pgraft_add_node(9, '127.0.0.1', 70000)", "22003", "port"),
        ("SELECT pgraft_add_node(9, '127.0.0.1', -5)", "22003", "port"),
        ("SELECT pgraft_remove_node(42)", "42704", "42"),
        ("SELECT pgraft_transfer_leadership(42)", "42704", "42"),
        ("SELECT pgraft_log_commit(1000000000)", "22023", "1000000000"),
        ("SELECT pgraft_log_apply(1000000000)", "22023", "1000000000"),
        ("SELECT pgraft_log_append(0, repeat('x', 1024 * 1024 + 1))", "54000", ""),
    ]
    for sql, sqlstate, fragment in cases:
        err = s.error(sql)
        assert err.sqlstate == sqlstate, (sql, err)
        assert fragment in err.message, (sql, err)

    s.psql("CREATE ROLE alice LOGIN")
    for sql in (
        "SELECT pgraft_add_node(9, '127.0.0.1', 7009)",
        "SELECT pgraft_remove_node(2)",
        "SELECT pgraft_log_append(0, 'sneaky')",
        "SELECT pgraft_init()",
        'SELECT pgraft_call(\'log_append\', \'{"term": 0, "data": "sneaky"}\')',
    ):
        assert s.error(sql, user="alice").sqlstate == "42501", sql

    for x in servers:
        assert members(x) == [1, 2, 3]
        assert x.leader() == leader
    assert s.scalar("SELECT last_index FROM pgraft_log_get_stats()") == stats_before

    # a node of another cluster cannot be added
    stranger = cluster.add(5, cluster_name="someone_else")
    stranger.psql("CREATE EXTENSION pgraft")
    stranger.wait_running()
    assert stranger.scalar("SELECT pgraft_init()") == "t"
    err = s.error(f"SELECT pgraft_add_node(5, '127.0.0.1', {stranger.raft_port})")
    assert err.sqlstate == "55000" and "did not join" in err.message, err
    for x in servers:
        wait_members(x, [1, 2, 3])
    assert members(stranger) == [5] and stranger.leader() == 5

    # an append that cannot reach a quorum gives way to statement_timeout
    followers = [x for x in servers if x.node_id != leader]
    pids = [x.node_pid() for x in followers]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        err = cluster.servers[leader].error(
            "SET statement_timeout = '300ms'; SELECT pgraft_log_append(0, 'no quorum')",
            timeout=30,
        )
        assert err.sqlstate == "57014" and "statement timeout" in err.message, err
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)

    cluster.wait_leader(servers)
    wait_for(
        "a leader confirmed by ReadIndex", lambda: s.scalar("SELECT pgraft_log_sync_with_leader()")
    )
    acked.append(s, "after-bad-input")
    for x in servers:
        acked.check(x)
        assert members(x) == [1, 2, 3]
        assert "sneaky" not in x.psql("SELECT string_agg(data, ',') FROM pgraft_log_read(1, 1000)")


def test_five_servers_survive_two_stopped(cluster: Cluster) -> None:
    servers = [cluster.add(i) for i in range(1, 6)]
    cluster.form(range(1, 6))
    leader = cluster.wait_leader()
    acked = Acked()
    for s in servers:
        acked.append(s, f"five-{s.node_id}")
    down = [cluster.servers[leader], next(s for s in servers if s.node_id != leader)]
    for s in down:
        s.stop("immediate")
    survivors = [s for s in servers if s not in down]
    cluster.wait_leader(survivors, exclude=leader)
    for s in survivors:
        acked.append(s, f"degraded-{s.node_id}")
    for s in survivors:
        acked.check(s)
    for s in down:
        s.start()
    for s in down:
        s.wait_running()
    cluster.wait_leader()
    for s in servers:
        acked.check(s)
