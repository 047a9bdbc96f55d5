"""The replicated-log checker on constructed logs."""

from __future__ import annotations

from pgraft.chaos.history import Op, OpKind, Outcome
from pgraft.chaos.logcheck import LogEntry, NodeLog, check_log


def append(i: int, data: str, outcome: Outcome, index: int | None = None) -> Op:
    done = None if outcome is Outcome.INFO else float(i + 1)
    return Op(i, i, OpKind.APPEND, None, (data,), float(i), done, outcome, index)


def log(node: int, entries: list[tuple[int, str]], commit: int, first: int = 1) -> NodeLog:
    return NodeLog(node, tuple(LogEntry(i, 1, d) for i, d in entries), commit, first)


OPS = [
    append(0, "a", Outcome.OK, 2),
    append(1, "b", Outcome.OK, 3),
    append(2, "c", Outcome.INFO),
    append(3, "d", Outcome.FAIL),
]
GOOD = [(2, "a"), (3, "b"), (5, "c")]


def test_consistent_logs_pass() -> None:
    result = check_log(OPS, [log(1, GOOD, 5), log(2, GOOD, 5), log(3, GOOD[:2], 3)])
    assert result.ok, result.violations
    assert (result.acknowledged, result.present, result.lost) == (2, 3, ())


def test_indeterminate_append_may_be_absent() -> None:
    assert check_log(OPS, [log(1, GOOD[:2], 3), log(2, GOOD[:2], 3)]).ok


def test_lost_acknowledgement_everywhere() -> None:
    result = check_log(OPS, [log(1, [(2, "a")], 3), log(2, [(2, "a")], 3)])
    assert result.lost == (1,)


def test_lost_acknowledgement_on_one_node_that_claims_the_index() -> None:
    result = check_log(OPS, [log(1, GOOD, 5), log(2, [(2, "a"), (5, "c")], 5)])
    assert result.lost == (1,)
    assert not result.ok


def test_lagging_node_is_not_a_loss() -> None:
    assert check_log(OPS, [log(1, GOOD, 5), log(2, [(2, "a")], 2)]).ok


def test_compacted_prefix_is_not_a_loss() -> None:
    assert check_log(OPS, [log(1, GOOD, 5), log(2, GOOD[1:], 5, first=3)]).ok


def test_acknowledged_at_another_index() -> None:
    result = check_log(OPS, [log(1, [(2, "a"), (4, "b")], 4)])
    assert result.lost == (1,)


def test_divergent_logs() -> None:
    result = check_log(OPS, [log(1, GOOD, 5), log(2, [(2, "a"), (3, "b"), (5, "x")], 5)])
    assert any("divergence at index 5" in v for v in result.violations)


def test_order_differs_between_nodes() -> None:
    result = check_log(OPS, [log(1, GOOD, 5), log(2, [(2, "b"), (3, "a"), (5, "c")], 5)])
    assert not result.ok


def test_duplicate_payload() -> None:
    result = check_log(OPS, [log(1, [*GOOD, (6, "c")], 6)])
    assert any("appears at indices [5, 6]" in v for v in result.violations)


def test_failed_append_must_not_appear() -> None:
    result = check_log(OPS, [log(1, [*GOOD, (6, "d")], 6)])
    assert any("reported failed" in v for v in result.violations)
    assert result.lost == ()


def test_invented_payload() -> None:
    result = check_log(OPS, [log(1, [*GOOD, (6, "zz")], 6)])
    assert any("never appended" in v for v in result.violations)


def test_out_of_order_listing() -> None:
    result = check_log(OPS, [log(1, [(3, "b"), (2, "a")], 3)])
    assert any("out of order" in v for v in result.violations)
