"""Joining: adoption of fresh nodes, refusals, and catching up by snapshot."""

from __future__ import annotations

import json
import socket

import pytest
from nodeharness import Cluster, NodeProc, append

from pgraft.control.errors import ControlError
from pgraft.control.protocol import encode_request


def append_pipelined(n: NodeProc, count: int, size: int = 64) -> list[int]:
    """``count`` log_append requests written before any reply is read."""
    payload = "x" * size
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(120)
        s.connect(n.socket)
        s.sendall(
            b"".join(
                encode_request("log_append", {"term": 0, "data": payload}) for _ in range(count)
            )
        )
        f = s.makefile("rb")
        replies = [json.loads(f.readline()) for _ in range(count)]
    assert all("ok" in r for r in replies), [r for r in replies if "ok" not in r][:3]
    return [r["ok"] for r in replies]


@pytest.mark.parametrize("problem", ["cluster_name", "secret", "has_data"])
def test_add_node_is_refused_and_the_learner_removed(cluster: Cluster, problem: str) -> None:
    secrets = cluster.root / "secret-a", cluster.root / "secret-b"
    secrets[0].write_text("the shared secret\n")
    secrets[1].write_text("another secret\n")
    mine = {"secret_file": str(secrets[0])} if problem == "secret" else {}
    theirs = {
        "cluster_name": {"cluster_name": "someone-else"},
        "secret": {"secret_file": str(secrets[1])},
        "has_data": {},
    }[problem]
    leader = cluster.add(1, **mine)
    assert leader.call("init") is True
    joiner = cluster.add(2, **theirs)
    if problem == "has_data":
        assert joiner.call("init") is True
        joiner.call("log_append", term=0, data="precious")
    with pytest.raises(ControlError) as exc:
        leader.call("add_node", node_id=2, address="127.0.0.1", port=joiner.port, timeout=60)
    assert exc.value.code == "55000"
    assert "did not join" in exc.value.message
    assert leader.call("cluster_status")["num_nodes"] == 1
    assert [n["node_id"] for n in leader.call("nodes")] == [1]
    if problem == "has_data":
        rows = joiner.call("log_read", from_index=1, to_index=100, limit=10)
        assert [r["data"] for r in rows] == ["precious"]
        assert "refuses" in joiner.log_text()


def test_a_fresh_bootstrapped_node_is_adopted(cluster: Cluster) -> None:
    leader = cluster.add(1)
    leader.call("init")
    leader.call("log_append", term=0, data="cluster data")
    other = cluster.add(2)
    other.call("init")  # its own one-member cluster, no user data: adoptable
    assert other.call("cluster_status")["cluster_id"] != leader.call("cluster_status")["cluster_id"]
    assert leader.call("add_node", node_id=2, address="127.0.0.1", port=other.port) is True
    other.call("sync_with_leader")
    assert other.call("cluster_status")["cluster_id"] == leader.call("cluster_status")["cluster_id"]
    assert [r["data"] for r in other.call("log_read", from_index=1, to_index=99, limit=9)] == [
        "cluster data"
    ]


def test_duplicate_and_unknown_members(cluster: Cluster) -> None:
    nodes = cluster.form(2)
    with pytest.raises(ControlError) as exc:
        nodes[0].call("add_node", node_id=2, address="127.0.0.1", port=nodes[1].port)
    assert exc.value.code == "42710"
    with pytest.raises(ControlError) as exc:
        nodes[1].call("remove_node", node_id=9)
    assert exc.value.code == "42704"
    with pytest.raises(ControlError) as exc:
        nodes[1].call("transfer_leadership", node_id=9)
    assert exc.value.code == "42704"


def test_new_node_catches_up_by_snapshot_then_votes(cluster: Cluster) -> None:
    compaction = {"snapshot_threshold": 2000, "log_retention": 500}
    nodes = cluster.form(2, **compaction)
    leader = cluster.leader()
    indexes = append_pipelined(leader, 10_000)
    assert len(set(indexes)) == 10_000
    stats = leader.call("log_stats")
    assert stats["first_index"] > 1  # compacted: a new member needs a snapshot
    new = cluster.add(3, **compaction)
    assert (
        leader.call("add_node", node_id=3, address="127.0.0.1", port=new.port, timeout=120) is True
    )
    new.call("log_apply", index=max(indexes), timeout_ms=60_000)
    rows = new.call("log_read", from_index=1, to_index=1 << 40, limit=100_000)
    assert sorted(r["index"] for r in rows) == sorted(indexes)
    assert "compacted" in leader.log_text()
    # The new member votes: with the other old member gone it completes a quorum.
    other = next(n for n in nodes if n is not leader)
    other.kill()
    index = append(leader, "needs the new voter")
    new.call("log_apply", index=index)


def test_membership_changes_through_a_follower(cluster: Cluster) -> None:
    nodes = cluster.form(2)
    assert cluster.leader().node_id == 1
    third = cluster.add(3)
    assert nodes[1].call("add_node", node_id=3, address="127.0.0.1", port=third.port) is True
    roles = {r["node_id"]: r["role"] for r in nodes[0].call("nodes")}
    assert roles == {1: "voter", 2: "voter", 3: "voter"}
    assert nodes[1].call("remove_node", node_id=1) is True
    new = cluster.leader([nodes[1], third])
    assert new.node_id in (2, 3)
    assert nodes[0].call("cluster_status")["state"] == "removed"
