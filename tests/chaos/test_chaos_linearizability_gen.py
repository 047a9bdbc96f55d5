"""The linearizability checker against generated histories and a brute-force reference.

Histories produced by a real sequential execution, with each operation's interval
stretched around its instant at random, must be linearizable. Mutating them in ways
that break linearizability must be caught. On tiny histories with arbitrary results the
checker must agree with an exhaustive search over orders.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pgraft.chaos.history import Op, OpKind, Outcome, Scalar, Value
from pgraft.chaos.linearizability import Verdict, check, kv_step

KEYS = ("k0", "k1", "k2")


@st.composite
def sequential_history(draw: st.DrawFn, max_ops: int = 40) -> list[Op]:
    """Run random operations one at a time on a dict; give each a random interval
    around its instant; some become indeterminate (applied or not) or failed (not
    applied)."""
    n = draw(st.integers(1, max_ops))
    state: dict[str, str | None] = {}
    ops: list[Op] = []
    for i in range(n):
        key = draw(st.sampled_from(KEYS))
        kind = draw(st.sampled_from([OpKind.PUT, OpKind.GET, OpKind.CAS, OpKind.DELETE]))
        fate = draw(st.sampled_from(["ok"] * 6 + ["info-applied", "info-lost", "fail"]))
        instant = 10.0 * i
        invoke = instant - draw(st.integers(0, 40))
        complete = instant + draw(st.integers(0, 40))
        current = state.get(key)
        args: tuple[Scalar, ...] = ()
        result: Value = None
        new = current
        match kind:
            case OpKind.PUT:
                args = (f"v{i}",)
                new = f"v{i}"
            case OpKind.GET:
                result = current
            case OpKind.CAS:
                expected = draw(st.sampled_from([current, None, "v0", f"v{max(i - 1, 0)}"]))
                args = (expected, f"v{i}")
                swapped = current == expected
                new = f"v{i}" if swapped else current
                result = (swapped, current)
            case OpKind.DELETE:
                result = current is not None
                new = None
        if fate in ("ok", "info-applied"):
            state[key] = new
        outcome = {"ok": Outcome.OK, "fail": Outcome.FAIL}.get(fate, Outcome.INFO)
        ops.append(
            Op(
                i,
                i,
                kind,
                key,
                args,
                float(invoke),
                None if outcome is Outcome.INFO else float(complete),
                outcome,
                result if outcome is Outcome.OK else None,
            )
        )
    return ops


@settings(max_examples=300, deadline=None)
@given(sequential_history())
def test_sequential_executions_are_linearizable(ops: list[Op]) -> None:
    assert check(ops).verdict is Verdict.LINEARIZABLE


@settings(max_examples=200, deadline=None)
@given(sequential_history(), st.data())
def test_read_of_unwritten_value_is_caught(ops: list[Op], data: st.DataObject) -> None:
    reads = [op for op in ops if op.kind is OpKind.GET and op.outcome is Outcome.OK]
    if not reads:
        return
    victim = data.draw(st.sampled_from(reads))
    ops[victim.id] = replace(victim, result="never-written")
    result = check(ops)
    assert result.verdict is Verdict.VIOLATION
    assert [k.key for k in result.violations] == [victim.key]


@settings(max_examples=200, deadline=None)
@given(sequential_history(), st.sampled_from(KEYS))
def test_stale_read_after_completed_writes_is_caught(ops: list[Op], key: str) -> None:
    """Two writes strictly after everything, then a read of the first one."""
    end = max((op.complete or op.invoke) for op in ops) + 100
    n = len(ops)
    ops.append(Op(n, n, OpKind.PUT, key, ("late1",), end, end + 1, Outcome.OK))
    ops.append(Op(n + 1, n + 1, OpKind.PUT, key, ("late2",), end + 2, end + 3, Outcome.OK))
    ops.append(Op(n + 2, n + 2, OpKind.GET, key, (), end + 4, end + 5, Outcome.OK, "late1"))
    assert check(ops).verdict is Verdict.VIOLATION


@settings(max_examples=200, deadline=None)
@given(sequential_history())
def test_failed_write_observed_is_caught(ops: list[Op]) -> None:
    """A read, strictly after everything, of a write that definitely failed."""
    failed = [op for op in ops if op.kind is OpKind.PUT and op.outcome is Outcome.FAIL]
    if not failed:
        return
    victim = failed[0]
    end = max((op.complete or op.invoke) for op in ops) + 100
    n = len(ops)
    ops.append(Op(n, n, OpKind.GET, victim.key, (), end, end + 1, Outcome.OK, victim.args[0]))
    assert check(ops).verdict is Verdict.VIOLATION


def brute_force(ops: list[Op]) -> bool:
    """Exhaustive reference: some subset of the indeterminate ops plus every definite
    op, in some order respecting real time, is a legal sequential run."""
    live = [op for op in ops if op.outcome is not Outcome.FAIL]
    definite = [op for op in live if op.outcome is Outcome.OK]
    maybe = [op for op in live if op.outcome is Outcome.INFO]
    for r in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, r):
            for order in itertools.permutations(definite + list(chosen)):
                if legal(order):
                    return True
    return False


def legal(order: tuple[Op, ...]) -> bool:
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            if b.complete is not None and b.complete < a.invoke:
                return False  # b finished before a began, yet a was placed first
    state: str | None = None
    for op in order:
        ok, state = kv_step(state, op)
        if not ok:
            return False
    return True


@st.composite
def tiny_arbitrary_history(draw: st.DrawFn) -> list[Op]:
    n = draw(st.integers(1, 5))
    values = st.sampled_from(["a", "b"])
    ops = []
    for i in range(n):
        kind = draw(st.sampled_from([OpKind.PUT, OpKind.GET, OpKind.CAS, OpKind.DELETE]))
        invoke = draw(st.integers(0, 10))
        outcome = draw(st.sampled_from([Outcome.OK, Outcome.OK, Outcome.OK, Outcome.INFO]))
        complete = None if outcome is Outcome.INFO else invoke + draw(st.integers(0, 6))
        args: tuple[Scalar, ...] = ()
        result: Value = None
        match kind:
            case OpKind.PUT:
                args = (draw(values),)
            case OpKind.GET:
                result = draw(st.one_of(st.none(), values))
            case OpKind.CAS:
                args = (draw(st.one_of(st.none(), values)), draw(values))
                result = (draw(st.booleans()), draw(st.one_of(st.none(), values)))
            case OpKind.DELETE:
                result = draw(st.booleans())
        ops.append(
            Op(
                i,
                i,
                kind,
                "k",
                args,
                float(invoke),
                None if complete is None else float(complete),
                outcome,
                result,
            )
        )
    return ops


@settings(max_examples=600, deadline=None)
@given(tiny_arbitrary_history())
def test_agrees_with_brute_force(ops: list[Op]) -> None:
    expected = Verdict.LINEARIZABLE if brute_force(ops) else Verdict.VIOLATION
    assert check(ops).verdict is expected
