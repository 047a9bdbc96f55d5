"""MemoryStorage: the reference Storage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgraft.core import (
    Compacted,
    ConfState,
    Entry,
    HardState,
    MemoryStorage,
    Snapshot,
    SnapshotMeta,
    SnapshotOutOfDate,
    Unavailable,
)

CS = ConfState(frozenset({1, 2, 3}))


def filled(n: int) -> MemoryStorage:
    s = MemoryStorage.bootstrap(CS)
    s.append([Entry(1 + i // 3, i + 1, data=b"x" * (i + 1)) for i in range(n)])
    return s


def test_bootstrap_initial_state() -> None:
    s = MemoryStorage.bootstrap(CS)
    assert s.initial_state() == (HardState(), CS)
    assert (s.first_index(), s.last_index(), s.term(0)) == (1, 0, 0)


def test_entries_and_terms_with_bounds() -> None:
    s = filled(6)
    assert [e.index for e in s.entries(2, 5)] == [2, 3, 4]
    assert [e.index for e in s.entries(2, 5, max_bytes=5)] == [2, 3]
    assert [e.index for e in s.entries(2, 5, max_bytes=0)] == [2]
    assert s.term(6) == 2
    with pytest.raises(Unavailable):
        s.entries(5, 8)
    with pytest.raises(Unavailable):
        s.term(7)


def test_append_truncates_conflicting_suffix_and_refuses_gaps() -> None:
    s = filled(6)
    s.append([Entry(5, 4), Entry(5, 5)])
    assert s.last_index() == 5 and s.term(4) == 5
    with pytest.raises(Unavailable):
        s.append([Entry(5, 9)])


def test_snapshot_compact_and_errors() -> None:
    s = filled(6)
    snap = s.create_snapshot(4, CS, b"img")
    assert snap.meta == SnapshotMeta(4, 2, CS)
    with pytest.raises(Unavailable):
        s.compact(5)  # beyond the snapshot
    s.compact(4)
    assert (s.first_index(), s.last_index(), s.term(4)) == (5, 6, 2)
    with pytest.raises(Compacted):
        s.term(3)
    with pytest.raises(Compacted):
        s.entries(4, 6)
    with pytest.raises(Compacted):
        s.compact(3)
    with pytest.raises(SnapshotOutOfDate):
        s.create_snapshot(4, CS, b"")
    s.append([Entry(1, 2)])  # entirely below the first index: ignored
    assert s.last_index() == 6


def test_apply_snapshot_replaces_log() -> None:
    s = filled(3)
    s.apply_snapshot(Snapshot(SnapshotMeta(10, 4, CS), b"img"))
    assert (s.first_index(), s.last_index(), s.term(10)) == (11, 10, 4)
    with pytest.raises(SnapshotOutOfDate):
        s.apply_snapshot(Snapshot(SnapshotMeta(9, 4, CS)))


@given(
    st.lists(
        st.tuples(st.integers(1, 30), st.integers(1, 6), st.integers(1, 4)),
        max_size=25,
    )
)
def test_append_matches_naive_model(ops: list[tuple[int, int, int]]) -> None:
    s = MemoryStorage.bootstrap(CS)
    model: list[int] = []  # model[i] = term of index i + 1
    for first, count, term in ops:
        first = min(first, len(model) + 1)  # never leave a gap
        batch = [Entry(term, first + i) for i in range(count)]
        s.append(batch)
        model = model[: first - 1] + [term] * count
        assert s.last_index() == len(model)
        assert [s.term(i) for i in range(1, len(model) + 1)] == model
