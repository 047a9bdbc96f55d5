"""The linearizability checker on classic hand-written histories."""

from __future__ import annotations

from chaos_builders import Builder

from pgraft.chaos.history import OpKind, Outcome
from pgraft.chaos.linearizability import Verdict, check


def verdict(b: Builder) -> Verdict:
    return check(b.ops).verdict


def test_empty_history_is_linearizable() -> None:
    assert check([]).verdict is Verdict.LINEARIZABLE


def test_sequential_put_then_get() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.get("a", 2, 3)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_initial_read_is_absent() -> None:
    b = Builder()
    b.get(None, 0, 1)
    b.put("a", 2, 3)
    b.get("a", 4, 5)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_read_of_value_never_written() -> None:
    b = Builder()
    b.put("a", 0, 1)
    bad = b.get("z", 2, 3)
    result = check(b.ops)
    assert result.verdict is Verdict.VIOLATION
    assert result.violations[0].blocked == bad.id


def test_stale_read_after_completed_write() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, 3)
    b.get("a", 4, 5)
    assert verdict(b) is Verdict.VIOLATION


def test_read_concurrent_with_write_may_see_either() -> None:
    for seen in ("a", "b"):
        b = Builder()
        b.put("a", 0, 1)
        b.put("b", 2, 6)
        b.get(seen, 3, 4)
        assert verdict(b) is Verdict.LINEARIZABLE


def test_new_then_old_inversion() -> None:
    """Two reads overlap one write; the first sees the new value, a later one the old."""
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, 10)
    b.get("b", 3, 4)
    b.get("a", 5, 6)
    assert verdict(b) is Verdict.VIOLATION


def test_concurrent_reads_may_disagree_when_overlapping() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, 10)
    b.get("b", 3, 6)
    b.get("a", 4, 7)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_write_order_must_respect_real_time() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, 3)
    b.get("b", 4, 5)
    b.get("a", 6, 7)
    assert verdict(b) is Verdict.VIOLATION


def test_touching_intervals_are_concurrent() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, 3)
    b.get("a", 3, 4)  # invoked exactly when put(b) completed
    assert verdict(b) is Verdict.LINEARIZABLE


def test_cas_semantics() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.cas("a", "b", (True, "b"), 2, 3)
    b.cas("a", "c", (False, "b"), 4, 5)
    b.get("b", 6, 7)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_cas_that_should_have_failed() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.cas("x", "b", (True, "b"), 2, 3)
    assert verdict(b) is Verdict.VIOLATION


def test_failed_cas_must_report_the_current_value() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.cas("x", "b", (False, "q"), 2, 3)
    assert verdict(b) is Verdict.VIOLATION


def test_cas_on_absent_key() -> None:
    b = Builder()
    b.cas(None, "a", (True, "a"), 0, 1)
    b.get("a", 2, 3)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_delete_semantics() -> None:
    b = Builder()
    b.delete(False, 0, 1)
    b.put("a", 2, 3)
    b.delete(True, 4, 5)
    b.get(None, 6, 7)
    assert verdict(b) is Verdict.LINEARIZABLE
    b.delete(True, 8, 9)
    assert verdict(b) is Verdict.VIOLATION


def test_indeterminate_write_may_take_effect_late() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, None)
    b.get("a", 10, 11)
    b.get("b", 20, 21)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_indeterminate_write_may_never_take_effect() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, None)
    b.get("a", 10, 11)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_indeterminate_write_cannot_be_undone() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, None)
    b.get("b", 10, 11)
    b.get("a", 20, 21)
    assert verdict(b) is Verdict.VIOLATION


def test_indeterminate_write_cannot_take_effect_before_invocation() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.get("b", 2, 3)
    b.put("b", 5, None)
    assert verdict(b) is Verdict.VIOLATION


def test_definitely_failed_write_never_takes_effect() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.put("b", 2, 3, outcome=Outcome.FAIL)
    b.get("b", 4, 5)
    assert verdict(b) is Verdict.VIOLATION


def test_indeterminate_cas_applies_only_when_it_matches() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.cas("x", "b", None, 2, None)
    b.get("b", 3, 4)
    assert verdict(b) is Verdict.VIOLATION
    b2 = Builder()
    b2.put("a", 0, 1)
    b2.cas("a", "b", None, 2, None)
    b2.get("b", 3, 4)
    assert verdict(b2) is Verdict.LINEARIZABLE


def test_indeterminate_reads_are_ignored() -> None:
    b = Builder()
    b.put("a", 0, 1)
    b.get("nonsense", 2, None)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_keys_are_checked_independently() -> None:
    b = Builder()
    b.put("a", 0, 1, key="x")
    b.put("a", 0, 1, key="y")
    b.put("b", 2, 3, key="y")
    b.get("a", 4, 5, key="x")
    b.get("a", 4, 5, key="y")  # stale on y only
    result = check(b.ops)
    assert result.verdict is Verdict.VIOLATION
    assert [k.key for k in result.violations] == ["y"]


def test_append_operations_are_not_key_value() -> None:
    b = Builder()
    b.add(OpKind.APPEND, "log", ("p",), 0, 1, 7)
    assert verdict(b) is Verdict.LINEARIZABLE


def test_budget_exhaustion_reports_unknown() -> None:
    b = Builder()
    for i in range(16):
        b.put(f"v{i}", float(i), None)
    b.get("nope", 100, 101)
    result = check(b.ops, max_steps_per_key=50)
    assert result.verdict is Verdict.UNKNOWN
    assert result.unknown[0].steps > 50


def test_violation_beats_unknown() -> None:
    b = Builder()
    for i in range(16):
        b.put(f"v{i}", float(i), None, key="slow")
    b.get("nope", 100, 101, key="slow")
    b.get("z", 0, 1, key="bad")
    result = check(b.ops, max_steps_per_key=50)
    assert result.verdict is Verdict.VIOLATION
    assert [k.key for k in result.unknown] == ["slow"]
