"""Harness parts that need no node processes: requests, results, probes, the report,
the nemesis's clean-up."""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

from pgraft.chaos.cluster import Cluster
from pgraft.chaos.faults import FILLER, FaultRecord, Nemesis, Prober, fill
from pgraft.chaos.history import Op, OpKind, Outcome
from pgraft.chaos.linearizability import check
from pgraft.chaos.logcheck import LogEntry, NodeLog, check_log
from pgraft.chaos.report import build_report
from pgraft.chaos.workload import interpret, request


def test_requests_follow_the_control_contract() -> None:
    assert request(OpKind.PUT, "k", ("v",)) == ("kv_put", {"key": "k", "value": "v"})
    assert request(OpKind.GET, "k", ()) == ("kv_get", {"key": "k"})
    assert request(OpKind.CAS, "k", (None, "v")) == (
        "kv_cas",
        {"key": "k", "expected": None, "value": "v"},
    )
    assert request(OpKind.DELETE, "k", ()) == ("kv_delete", {"key": "k"})
    assert request(OpKind.APPEND, None, ("p",)) == ("log_append", {"term": 0, "data": "p"})


def test_replies_become_history_results() -> None:
    assert interpret(OpKind.PUT, 7) is None
    assert interpret(OpKind.GET, {"value": "v", "index": 3}) == "v"
    assert interpret(OpKind.GET, {"value": None, "index": 3}) is None
    assert interpret(OpKind.CAS, {"ok": False, "value": "w", "index": 4}) == (False, "w")
    assert interpret(OpKind.DELETE, {"deleted": True, "index": 5}) is True
    assert interpret(OpKind.APPEND, 9) == 9


def test_longest_gap_between_acknowledged_probes(tmp_path: Path) -> None:
    prober = Prober(Cluster(tmp_path, 1, prefix=[]), random.Random(0))
    prober.acks = [(0.0, 1.0), (1.0, 2.0), (2.0, 6.0), (6.0, 6.5)]
    assert prober.longest_gap(0.5, 7.0) == 4.0
    assert prober.longest_gap(7.0, 9.0) == 2.0


def test_report_counts_and_verdict() -> None:
    ops = [
        Op(0, 1, OpKind.PUT, "k", ("a",), 0.0, 1.0, Outcome.OK),
        Op(1, 2, OpKind.GET, "k", (), 2.0, 3.0, Outcome.OK, "zz"),
        Op(2, 3, OpKind.APPEND, None, ("p",), 0.0, 1.0, Outcome.OK, 5),
        Op(3, 4, OpKind.APPEND, None, ("q",), 0.0, None, Outcome.INFO),
    ]
    faults = [FaultRecord("kill", [1], 0.0, 2.0, 0.5, 1.5), FaultRecord("pause", [2], 3.0, 4.0)]
    report = build_report(
        seed=1,
        duration_s=10.0,
        nodes=5,
        partitions="none",
        ops=ops,
        faults=faults,
        probes=(10, 8),
        disk_stops=[],
        problems=[],
        lin=check(ops),
        log=check_log(ops, [NodeLog(1, (LogEntry(4, 1, "q"),), 5)]),
        check_s=0.1,
    )
    d = report.data
    assert d["operations"]["attempted"] == 4 and d["operations"]["info"] == 1
    assert d["faults"] == {"kill": 1, "pause": 1}
    assert d["recovery_s"] == {"median": 0.5, "max": 0.5, "unrecovered": 1}
    assert report.lost_acknowledgements == 1
    assert report.violations == 2  # the impossible read and the lost append
    assert not report.passed
    summary = report.summary()
    assert "not linearizable" in summary and "op 1 get() -> ok 'zz'" in summary
    assert summary.endswith("FAIL")


def nemesis_on(cluster: Cluster) -> Nemesis:
    rng = random.Random(0)
    return Nemesis(cluster, None, rng, Prober(cluster, rng), ("kill",))


def test_free_disks_removes_the_filler(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path, 2, prefix=[], disk_node=2)
    mount = cluster.nodes[2].disk_mount
    assert mount is not None
    mount.mkdir()
    fill(mount / FILLER, max_chunks=2)
    nemesis_on(cluster).free_disks()
    assert not (mount / FILLER).exists()


def test_a_process_that_stops_answering_is_killed_and_judged(tmp_path: Path) -> None:
    """Hung while stopping on a full disk: expected; hung otherwise: a problem."""
    cluster = Cluster(tmp_path, 2, prefix=[])
    nemesis = nemesis_on(cluster)
    lines = {1: "node 1 cannot run: x.db: database or disk is full", 2: "node 2 running"}
    for node_id, line in lines.items():
        cluster.nodes[node_id].log_path.write_text(line + "\n")
        cluster.nodes[node_id].proc = subprocess.Popen(["sleep", "60"])
        nemesis.unstick(node_id)
        assert not cluster.nodes[node_id].running
        assert cluster.nodes[node_id].exits == [-signal.SIGKILL]
    assert nemesis.disk_stops == [f"node 1 hung stopping, killed: {lines[1]}"]
    assert nemesis.problems == [f"node 2 ran without answering, killed: {lines[2]}"]
