"""RaftLog: unstable tail over storage, conflicts, term searches, commit invariants."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgraft.core import Compacted, ConfState, Entry, MemoryStorage, Snapshot, SnapshotMeta
from pgraft.core.log import RaftLog


def ents(terms: list[int], start: int = 1) -> list[Entry]:
    return [Entry(t, i, data=b"d%d" % i) for i, t in enumerate(terms, start)]


def make_log(stored: list[int], unstable: list[int] = ()) -> RaftLog:  # type: ignore[assignment]
    storage = MemoryStorage.bootstrap(ConfState(frozenset({1})))
    storage.append(ents(stored))
    log = RaftLog(storage)
    if unstable:
        log.append(ents(list(unstable), len(stored) + 1))
    return log


terms_st = st.lists(st.integers(1, 4), max_size=25).map(sorted)


def naive_conflict(log_terms: list[int], batch: list[Entry]) -> int:
    for e in batch:
        if e.index > len(log_terms) or log_terms[e.index - 1] != e.term:
            return e.index
    return 0


@given(terms_st, terms_st, st.integers(0, 24), st.integers(0, 25))
def test_find_conflict_matches_naive(
    mine: list[int], theirs: list[int], cut: int, count: int
) -> None:
    # ``theirs`` shares ``mine``'s first ``cut`` entries (Log Matching Property holds).
    cut = min(cut, len(mine))
    base = mine[:cut]
    other = base + [t for t in theirs if not base or t >= base[-1]]
    for i in range(cut, len(other)):
        if i < len(mine) and other[i] == mine[i]:
            other[i] += 10  # diverge for real after the shared prefix
            other[i + 1 :] = [max(t, other[i]) for t in other[i + 1 :]]
            break
    log = make_log(mine[: len(mine) // 2], mine[len(mine) // 2 :])
    lo = min(cut, len(other))
    batch = ents(other, 1)[lo : lo + count]
    assert log.find_conflict(batch) == naive_conflict(mine, batch)


@given(terms_st, st.integers(0, 30), st.integers(0, 6))
def test_find_conflict_by_term_matches_naive(terms: list[int], index: int, term: int) -> None:
    log = make_log(terms)
    index = min(index, len(terms))
    expected = 0
    for i in range(index, 0, -1):
        if terms[i - 1] <= term:
            expected = i
            break
    assert log.find_conflict_by_term(index, term) == expected


def test_maybe_append_truncates_conflicting_suffix() -> None:
    log = make_log([1, 1, 2], [2, 2])
    assert log.maybe_append(3, 2, 3, ents([3, 3], 4)) == 5
    assert [log.term(i) for i in range(1, 6)] == [1, 1, 2, 3, 3]
    assert log.committed == 3
    assert log.maybe_append(5, 9, 5, []) is None  # prev does not match
    assert log.maybe_append(1, 1, 9, ents([1, 2], 2)) == 3  # already present: no change
    assert log.last_index() == 5
    assert log.committed == 3


def test_maybe_append_refuses_to_truncate_committed() -> None:
    log = make_log([1, 1, 1])
    log.commit_to(3)
    with pytest.raises(AssertionError):
        log.maybe_append(1, 1, 3, ents([2, 2], 2))


def test_slice_spans_storage_and_unstable_with_byte_limit() -> None:
    log = make_log([1, 1, 1], [2, 2])
    assert [e.index for e in log.slice(2, 6)] == [2, 3, 4, 5]
    assert [e.index for e in log.slice(4, 6)] == [4, 5]
    assert [e.index for e in log.slice(2, 6, max_bytes=5)] == [2, 3]
    assert [e.index for e in log.slice(2, 6, max_bytes=1)] == [2]  # at least one
    with pytest.raises(Compacted):
        log.slice(0, 2)


def test_stable_to_ignores_replaced_entries() -> None:
    log = make_log([1], [1, 1])
    log.maybe_append(1, 1, 0, ents([2], 2))  # truncates the unstable tail to [2/2]
    log.stable_to(3, 1)  # an old Ready's entries: no effect
    assert log.unstable and log.offset == 2
    log.stable_to(2, 2)
    assert not log.unstable and log.offset == 3


def test_commit_never_decreases_and_never_passes_last() -> None:
    log = make_log([1, 1])
    log.commit_to(2)
    log.commit_to(1)
    assert log.committed == 2
    with pytest.raises(AssertionError):
        log.commit_to(3)


def test_maybe_commit_only_for_entries_of_the_term() -> None:
    log = make_log([1, 1, 2])
    assert not log.maybe_commit(2, 2)
    assert log.maybe_commit(3, 2)
    assert log.committed == 3


def test_restore_from_snapshot() -> None:
    log = make_log([1, 1], [1])
    snap = Snapshot(SnapshotMeta(10, 3, ConfState(frozenset({1}))), b"img")
    log.restore(snap)
    assert (log.first_index(), log.last_index(), log.committed) == (11, 10, 10)
    assert log.term(10) == 3
    assert not log.has_next_committed()
    with pytest.raises(Compacted):
        log.term(9)
    log.append(ents([3], 11))
    assert log.last_term() == 3


def test_is_up_to_date() -> None:
    log = make_log([1, 2, 2])
    assert log.is_up_to_date(3, 2)
    assert log.is_up_to_date(1, 3)
    assert not log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(9, 1)


def test_next_committed_after_applied() -> None:
    log = make_log([1, 1, 1, 1])
    log.commit_to(3)
    log.applied_to(1)
    assert [e.index for e in log.next_committed()] == [2, 3]
