"""The replicated log checker: nothing acknowledged is lost, nothing refused appears.

Theory of operation
-------------------
Clients append unique payloads and record each attempt in the history (``append``
operations: ``ok`` with the index the system acknowledged, ``fail`` when it said the
append did not happen, ``info`` when nobody knows). After the run every node's log is
read back. The checker then demands:

* *Agreement* -- for every index, every node that holds an entry there holds the same
  entry (term and data), and a node never skips a user entry at an index it claims to
  have committed while another node has one there. So the log has one order,
  everywhere.
* *Durability* -- every acknowledged append is present, at the index it was
  acknowledged with, on every node whose committed range covers that index. One that is
  missing is a *lost acknowledgement*.
* *Exactly once* -- no payload appears at two indices.
* *No phantom success of a failure* -- a payload whose append was reported as a
  definite failure is absent. Indeterminate appends may or may not appear.
* *No invention* -- every payload in the log was appended by some client.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pgraft.chaos.history import Op, OpKind, Outcome


@dataclass(frozen=True, slots=True)
class LogEntry:
    index: int
    term: int
    data: str


@dataclass(frozen=True, slots=True)
class NodeLog:
    """The user entries one node returned for ``[first_index, commit_index]``."""

    node_id: int
    entries: tuple[LogEntry, ...]
    commit_index: int
    first_index: int = 1

    def covers(self, index: int) -> bool:
        return self.first_index <= index <= self.commit_index


@dataclass(frozen=True, slots=True)
class LogCheckResult:
    acknowledged: int
    present: int  # distinct payloads found in the merged log
    lost: tuple[int, ...]  # op ids of acknowledged appends that are missing somewhere
    violations: tuple[str, ...]  # every problem, lost acknowledgements included

    @property
    def ok(self) -> bool:
        return not self.violations


def check_log(ops: Iterable[Op], logs: Sequence[NodeLog]) -> LogCheckResult:
    """Check appends against the logs read back from the nodes (see module docstring)."""
    appends = [op for op in ops if op.kind is OpKind.APPEND]
    violations: list[str] = []
    merged: dict[int, LogEntry] = {}
    by_node: dict[int, dict[int, LogEntry]] = {}
    for log in logs:
        mine: dict[int, LogEntry] = {}
        last = 0
        for entry in log.entries:
            if entry.index <= last:
                violations.append(f"node {log.node_id}: index {entry.index} out of order")
            last = max(last, entry.index)
            mine[entry.index] = entry
            seen = merged.setdefault(entry.index, entry)
            if seen != entry:
                violations.append(
                    f"divergence at index {entry.index}: {seen} vs {entry} on node {log.node_id}"
                )
        by_node[log.node_id] = mine
    for index, entry in sorted(merged.items()):
        for log in logs:
            if log.covers(index) and index not in by_node[log.node_id]:
                violations.append(
                    f"node {log.node_id} committed index {index} but lacks {entry.data!r}"
                )
    where: dict[str, list[int]] = {}
    for index, entry in sorted(merged.items()):
        where.setdefault(entry.data, []).append(index)
    for data, indices in where.items():
        if len(indices) > 1:
            violations.append(f"payload {data!r} appears at indices {indices}")
    attempted = {str(op.args[0]) for op in appends}
    for data in where:
        if data not in attempted:
            violations.append(f"payload {data!r} was never appended by a client")
    lost: list[int] = []
    acknowledged = 0
    for op in appends:
        data = str(op.args[0])
        found = where.get(data, [])
        if op.outcome is Outcome.FAIL and found:
            violations.append(f"op {op.id}: append reported failed but {data!r} is at {found}")
        if op.outcome is not Outcome.OK:
            continue
        acknowledged += 1
        if not isinstance(op.result, int) or op.result not in found:
            lost.append(op.id)
            violations.append(f"op {op.id}: acknowledged at {op.result} but found at {found}")
            continue
        missing = [
            log.node_id
            for log in logs
            if log.covers(op.result) and by_node[log.node_id].get(op.result) != merged[op.result]
        ]
        if missing:
            lost.append(op.id)
            violations.append(f"op {op.id}: acknowledged {data!r} missing on nodes {missing}")
    return LogCheckResult(acknowledged, len(where), tuple(lost), tuple(violations))
