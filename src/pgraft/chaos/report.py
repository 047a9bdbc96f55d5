"""The chaos run's report: JSON for machines, a short summary for people.

Theory of operation
-------------------
The report gathers what was attempted and how it ended, which faults ran and how long
the cluster took to acknowledge a write again after each, and the two verdicts. A run
passes when the key-value history is linearizable (``unknown`` -- the search ran out
of budget -- does not pass), the log checker found nothing, and no fault exposed a
problem such as a node that could not restart.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgraft.chaos.faults import FaultRecord
from pgraft.chaos.history import Op, counts, describe
from pgraft.chaos.linearizability import CheckResult, Verdict
from pgraft.chaos.logcheck import LogCheckResult

MAX_LISTED = 20


@dataclass(frozen=True)
class Report:
    data: dict[str, Any]

    @property
    def passed(self) -> bool:
        return bool(self.data["passed"])

    @property
    def violations(self) -> int:
        return int(self.data["violations"])

    @property
    def lost_acknowledgements(self) -> int:
        return int(self.data["lost_acknowledgements"])

    def to_json(self) -> str:
        return json.dumps(self.data, indent=1, sort_keys=True)

    def summary(self) -> str:
        d = self.data
        ops, rec = d["operations"], d["recovery_s"]
        faults = ", ".join(f"{k} x{n}" for k, n in sorted(d["faults"].items())) or "none"
        lines = [
            f"chaos run: seed {d['seed']}, {d['duration_s']:.0f} s of faults on {d['nodes']}"
            f" nodes (partitions: {d['partitions']})",
            f"operations: {ops['attempted']} attempted, {ops['ok']} acknowledged,"
            f" {ops['fail']} failed, {ops['info']} indeterminate",
            f"faults: {faults}",
            f"recovery after heal: median {_s(rec['median'])}, max {_s(rec['max'])},"
            f" not recovered {rec['unrecovered']}",
            f"write outage per fault (no probe acknowledged): median"
            f" {_s(d['outage_s']['median'])}, max {_s(d['outage_s']['max'])}",
            f"linearizability: {d['linearizability']['verdict']}"
            f" ({d['linearizability']['keys']} keys, checked in {d['check_s']:.1f} s)",
            f"log: {d['log']['acknowledged']} acknowledged appends,"
            f" {d['log']['present']} payloads present",
            f"violations: {d['violations']}, lost acknowledgements:"
            f" {d['lost_acknowledgements']}, problems: {len(d['problems'])}",
        ]
        lines += [f"  violation: {v}" for v in d["violation_details"]]
        lines += [f"  problem: {p}" for p in d["problems"]]
        lines += [f"  fail-stop on full disk: {s}" for s in d["disk_stops"]]
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def build_report(
    *,
    seed: int,
    duration_s: float,
    nodes: int,
    partitions: str,
    ops: Sequence[Op],
    faults: Sequence[FaultRecord],
    probes: tuple[int, int],
    disk_stops: Sequence[str],
    problems: Sequence[str],
    lin: CheckResult,
    log: LogCheckResult,
    check_s: float,
) -> Report:
    recoveries = [f.recovery_s for f in faults if f.recovery_s is not None]
    outages = [f.outage_s for f in faults]
    by_kind: dict[str, dict[str, int]] = {}
    for op in ops:
        row = by_kind.setdefault(op.kind.value, {"attempted": 0, "ok": 0, "fail": 0, "info": 0})
        row["attempted"] += 1
        row[op.outcome.value if op.outcome else "info"] += 1
    t0 = min((op.invoke for op in ops), default=0.0)
    by_id = {op.id: op for op in ops}
    details = [
        f"key {k.key}: not linearizable: {describe(by_id[k.blocked], t0)} cannot follow"
        f" {len(k.best_prefix)} ops ending with "
        + "; ".join(describe(by_id[i], t0) for i in k.best_prefix[-3:])
        for k in lin.violations
        if k.blocked is not None
    ]
    details += list(log.violations)
    violations = len(lin.violations) + len(log.violations)
    data: dict[str, Any] = {
        "seed": seed,
        "duration_s": round(duration_s, 1),
        "nodes": nodes,
        "partitions": partitions,
        "operations": {**counts(ops), "by_kind": by_kind},
        "faults": dict(Counter(f.kind for f in faults)),
        "fault_log": [
            {
                "kind": f.kind,
                "targets": f.targets,
                "held_s": round(f.healed - f.started, 2),
                "recovery_s": None if f.recovery_s is None else round(f.recovery_s, 3),
                "outage_s": round(f.outage_s, 3),
                "note": f.note,
            }
            for f in faults
        ],
        "recovery_s": {
            "median": statistics.median(recoveries) if recoveries else None,
            "max": max(recoveries) if recoveries else None,
            "unrecovered": sum(1 for f in faults if f.recovery_s is None),
        },
        "outage_s": {
            "median": statistics.median(outages) if outages else None,
            "max": max(outages) if outages else None,
        },
        "probes": {"attempted": probes[0], "acknowledged": probes[1]},
        "linearizability": {
            "verdict": lin.verdict.value,
            "keys": len(lin.keys),
            "unknown_keys": [k.key for k in lin.unknown],
        },
        "log": {
            "acknowledged": log.acknowledged,
            "present": log.present,
            "lost": list(log.lost[:MAX_LISTED]),
        },
        "check_s": round(check_s, 2),
        "violations": violations,
        "violation_details": details[:MAX_LISTED],
        "lost_acknowledgements": len(log.lost),
        "problems": list(problems),
        "disk_stops": list(disk_stops),
        "passed": violations == 0 and lin.verdict is Verdict.LINEARIZABLE and not problems,
    }
    return Report(data)
