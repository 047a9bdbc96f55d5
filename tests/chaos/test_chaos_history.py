"""Recording operations."""

from __future__ import annotations

import itertools

import pytest

from pgraft.chaos.history import History, OpKind, Outcome, counts, load


def test_record_complete_dump_and_load() -> None:
    ticks = itertools.count(1)
    h = History(lambda: float(next(ticks)))
    a = h.invoke(1, OpKind.CAS, "k", ("x", "y"))
    b = h.invoke(2, OpKind.PUT, "k", ("v",))
    c = h.invoke(3, OpKind.APPEND, None, ("p",))
    h.complete(a, Outcome.OK, (False, "v"))
    h.complete(b, Outcome.INFO, error="timeout")
    h.invoke(4, OpKind.GET, "k", ())
    h.complete(c, Outcome.FAIL, error="PR002")
    ops = h.ops()
    assert [op.outcome for op in ops] == [Outcome.OK, Outcome.INFO, Outcome.FAIL, Outcome.INFO]
    assert ops[0].complete == 4.0 and ops[0].result == (False, "v")
    assert ops[1].complete is None and ops[3].error == "open"
    assert load(h.dump()) == ops
    assert counts(ops) == {"attempted": 4, "ok": 1, "fail": 1, "info": 2}


def test_a_process_has_one_open_operation() -> None:
    h = History()
    h.invoke(1, OpKind.GET, "k", ())
    with pytest.raises(ValueError):
        h.invoke(1, OpKind.GET, "k", ())


def test_completing_twice_is_refused() -> None:
    h = History()
    op = h.invoke(1, OpKind.GET, "k", ())
    h.complete(op, Outcome.OK, None)
    with pytest.raises(ValueError):
        h.complete(op, Outcome.OK, None)
