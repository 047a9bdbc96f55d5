"""Follower progress tracking and the in-flight window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pgraft.core.progress import Inflights, Progress, ProgressState


@given(st.integers(1, 8), st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=60))
def test_inflights_match_naive_model(size: int, ops: list[tuple[bool, int]]) -> None:
    infl = Inflights(size)
    model: list[int] = []
    last = 0
    for add, value in ops:
        if add:
            if len(model) < size:
                last += value % 5 + 1
                infl.add(last)
                model.append(last)
        else:
            infl.free_le(value)
            model = [i for i in model if i > value]
        assert infl.count() == len(model)
        assert infl.full() == (len(model) >= size)


def test_inflights_free_first_one() -> None:
    infl = Inflights(2)
    infl.add(3)
    infl.add(5)
    assert infl.full()
    infl.free_first_one()
    assert not infl.full()
    infl.free_le(5)
    assert infl.count() == 0


def test_probe_pauses_until_resumed() -> None:
    pr = Progress(next_index=10, max_inflight=4)
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.paused = True
    assert pr.is_paused()
    assert pr.maybe_update(9)  # an ack resumes and moves match
    assert not pr.is_paused() and pr.match == 9 and pr.next == 10
    assert not pr.maybe_update(5)  # old news


def test_replicate_window() -> None:
    pr = Progress(next_index=1, max_inflight=2)
    pr.maybe_update(0)
    pr.become_replicate()
    pr.inflights.add(5)
    pr.inflights.add(9)
    assert pr.is_paused()
    pr.maybe_update(5)
    pr.inflights.free_le(5)
    assert not pr.is_paused()


def test_maybe_decr_to_probe_uses_hint_and_ignores_stale() -> None:
    pr = Progress(next_index=21, max_inflight=4)
    pr.match = 3
    assert not pr.maybe_decr_to(15, 2)  # not the index we probed: stale
    assert pr.maybe_decr_to(20, 10)
    assert pr.next == 11
    assert pr.maybe_decr_to(10, 0)
    assert pr.next == 4  # never below match + 1


def test_maybe_decr_to_replicate_falls_back_to_match() -> None:
    pr = Progress(next_index=30, max_inflight=4)
    pr.match = 12
    pr.become_replicate()
    pr.next = 30
    assert not pr.maybe_decr_to(12, 0)  # at or below match: stale
    assert pr.maybe_decr_to(20, 15)
    assert pr.next == 13


def test_snapshot_state_then_probe_after_it() -> None:
    pr = Progress(next_index=5, max_inflight=4)
    pr.become_snapshot(100)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.state == ProgressState.PROBE and pr.next == 101
