"""Operation histories: what clients asked for, when, and what they were told.

Theory of operation
-------------------
A fault test is judged only by what its clients observed. Every client call is
recorded twice: at *invocation* (process, kind, key, arguments, monotonic time) and at
*completion* (time, outcome, result). The outcome is one of

* ``ok``   -- the system acknowledged the operation and returned ``result``;
* ``fail`` -- the system said, definitely, that the operation did not take effect
  (for example "proposal dropped" before it was proposed);
* ``info`` -- indeterminate: a timeout, a lost connection, a crashed node. The
  operation may or may not have taken effect, now or at any later time, so a checker
  must treat its completion time as infinity.

An operation that is still open when the history is closed is recorded as ``info``.
A ``process`` is a logical single-threaded client: it never has two operations open at
once. After an ``info`` outcome a workload moves the client to a fresh process id
(the old one might still be "executing" the lost operation).

Histories are plain data: they serialise to and from JSON lines so a failing run can be
kept and re-checked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum

Scalar = str | int | bool | None
"""Arguments and results are JSON scalars or flat lists of them."""
Value = Scalar | tuple[Scalar, ...]


class Outcome(StrEnum):
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


class OpKind(StrEnum):
    PUT = "put"
    GET = "get"
    CAS = "cas"
    DELETE = "delete"
    APPEND = "append"


@dataclass(frozen=True, slots=True)
class Op:
    """One client operation, invoked and (perhaps) completed.

    Argument conventions (``args``): put ``(value,)``; get ``()``; cas
    ``(expected, value)``; delete ``()``; append ``(data,)``. Result conventions for
    ``ok`` operations: put ``None``; get the value read (``None`` = absent); cas
    ``(swapped, current)`` where ``current`` is the value found when not swapped;
    delete ``existed``; append the log index.
    """

    id: int
    process: int
    kind: OpKind
    key: str | None
    args: tuple[Scalar, ...]
    invoke: float
    complete: float | None  # None while open and for ``info`` (completion at infinity)
    outcome: Outcome | None  # None while open
    result: Value = None
    error: str = ""
    node: int = 0  # the node the request was sent to (0: not recorded)

    def __post_init__(self) -> None:
        if self.complete is not None and self.complete < self.invoke:
            raise ValueError(f"op {self.id}: completes before it is invoked")

    def to_json(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "process": self.process,
                "kind": self.kind.value,
                "key": self.key,
                "args": list(self.args),
                "invoke": self.invoke,
                "complete": self.complete,
                "outcome": None if self.outcome is None else self.outcome.value,
                "result": list(self.result) if isinstance(self.result, tuple) else self.result,
                "error": self.error,
                "node": self.node,
            },
            sort_keys=True,
        )

    @staticmethod
    def from_json(line: str) -> Op:
        d = json.loads(line)
        result = d["result"]
        outcome = d["outcome"]
        return Op(
            id=int(d["id"]),
            process=int(d["process"]),
            kind=OpKind(d["kind"]),
            key=d["key"],
            args=tuple(d["args"]),
            invoke=float(d["invoke"]),
            complete=None if d["complete"] is None else float(d["complete"]),
            outcome=None if outcome is None else Outcome(outcome),
            result=tuple(result) if isinstance(result, list) else result,
            error=str(d.get("error", "")),
            node=int(d.get("node", 0)),
        )


class History:
    """An append-only recorder of operations, safe to share between asyncio tasks
    (it never awaits, so each call runs atomically with respect to the event loop)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ops: list[Op] = []
        self._open: dict[int, int] = {}  # process -> id of its open operation

    def invoke(
        self, process: int, kind: OpKind, key: str | None, args: Iterable[Scalar], node: int = 0
    ) -> int:
        """Record an invocation and return its operation id.

        Raises ValueError if ``process`` already has an open operation."""
        if process in self._open:
            raise ValueError(f"process {process} already has op {self._open[process]} open")
        op_id = len(self._ops)
        self._ops.append(
            Op(op_id, process, kind, key, tuple(args), self._clock(), None, None, node=node)
        )
        self._open[process] = op_id
        return op_id

    def complete(self, op_id: int, outcome: Outcome, result: Value = None, error: str = "") -> None:
        """Record the completion of an open operation (``info`` has no completion time)."""
        op = self._ops[op_id]
        if op.outcome is not None:
            raise ValueError(f"op {op_id} completed twice")
        del self._open[op.process]
        when = None if outcome is Outcome.INFO else self._clock()
        self._ops[op_id] = replace(op, complete=when, outcome=outcome, result=result, error=error)

    def ops(self) -> list[Op]:
        """All operations; those still open are reported as ``info``."""
        return [
            op if op.outcome is not None else replace(op, outcome=Outcome.INFO, error="open")
            for op in self._ops
        ]

    def __len__(self) -> int:
        return len(self._ops)

    def dump(self) -> Iterator[str]:
        """JSON lines, one per operation (open ones as ``info``)."""
        for op in self.ops():
            yield op.to_json()


def load(lines: Iterable[str]) -> list[Op]:
    """Parse the JSON lines written by ``History.dump``."""
    return [Op.from_json(line) for line in lines if line.strip()]


def counts(ops: Iterable[Op]) -> dict[str, int]:
    """Operations attempted and how they ended (the report's first table)."""
    out = {"attempted": 0, "ok": 0, "fail": 0, "info": 0}
    for op in ops:
        out["attempted"] += 1
        out[(op.outcome or Outcome.INFO).value] += 1
    return out


def describe(op: Op, t0: float = 0.0) -> str:
    """One line for a report: ``put('v1') -> ok None via node 2 [1.20-1.31 s]``."""
    args = ", ".join(repr(a) for a in op.args)
    end = "inf" if op.complete is None else f"{op.complete - t0:.2f}"
    outcome = op.outcome.value if op.outcome else "open"
    return (
        f"op {op.id} {op.kind.value}({args}) -> {outcome} {op.result!r} via node {op.node}"
        f" [{op.invoke - t0:.2f}-{end} s]"
    )
