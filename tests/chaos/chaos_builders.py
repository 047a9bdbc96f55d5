"""Helpers to write histories by hand in the chaos tests."""

from __future__ import annotations

from pgraft.chaos.history import Op, OpKind, Outcome, Scalar, Value


class Builder:
    """Ops with explicit times; ``complete=None`` makes an indeterminate op."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(
        self,
        kind: OpKind,
        key: str,
        args: tuple[Scalar, ...],
        invoke: float,
        complete: float | None,
        result: Value = None,
        outcome: Outcome | None = None,
    ) -> Op:
        if outcome is None:
            outcome = Outcome.INFO if complete is None else Outcome.OK
        op = Op(len(self.ops), len(self.ops), kind, key, args, invoke, complete, outcome, result)
        self.ops.append(op)
        return op

    def put(
        self,
        v: str,
        t0: float,
        t1: float | None,
        key: str = "k",
        outcome: Outcome | None = None,
    ) -> Op:
        return self.add(OpKind.PUT, key, (v,), t0, t1, None, outcome)

    def get(self, r: str | None, t0: float, t1: float | None, key: str = "k") -> Op:
        return self.add(OpKind.GET, key, (), t0, t1, r)

    def cas(
        self,
        exp: str | None,
        v: str,
        res: tuple[bool, str | None] | None,
        t0: float,
        t1: float | None,
        key: str = "k",
    ) -> Op:
        return self.add(OpKind.CAS, key, (exp, v), t0, t1, res)

    def delete(self, existed: bool | None, t0: float, t1: float | None, key: str = "k") -> Op:
        return self.add(OpKind.DELETE, key, (), t0, t1, existed)
