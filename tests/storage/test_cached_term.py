"""``LogView.cached_term``: the terms memory knows (the snapshot point and the cached
tail) are answered without touching SQLite; ``term`` falls back to a query and still
raises outside the log. Over a real ``DurableStorage``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgraft.core.types import (
    Compacted,
    Entry,
    EntryType,
    HardState,
    Unavailable,
)
from pgraft.storage import DurableStorage
from pgraft.storage.view import TERM_CACHE

SNAP = 10  # compacted up to here (term 1)
LAST = TERM_CACHE + 50
CACHE_BASE = LAST - TERM_CACHE + 1  # after a reopen, terms from here on are in memory


def _ents(first: int, last: int, term: int) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, f"e{i}".encode()) for i in range(first, last + 1)]


def _open(path: Path) -> DurableStorage:
    return DurableStorage.open(path, node_id=1, cluster_name="c1")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DurableStorage]:
    """Entries 1..LAST (term 1 up to 30, then term 2), compacted up to SNAP, reopened
    so that the term cache holds exactly the last TERM_CACHE entries."""
    with _open(tmp_path) as st:
        st.save_ready([*_ents(1, 30, 1), *_ents(31, LAST, 2)], HardState(2, 0, 20), None)
        with st.transaction():
            st.set_applied(20, st.conf_state)
        st.compact(SNAP)
    st = _open(tmp_path)
    assert (st.first_index(), st.last_index()) == (SNAP + 1, LAST)
    assert st.cached_term(CACHE_BASE - 1) is None  # the premise of the uncached cases
    assert st.cached_term(CACHE_BASE) == 2
    yield st
    st.close()


class _NoSQL:
    """Stands in for the SQLite connection: any use fails the test."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"SQLite touched: connection.{name}")


# ---------------------------------------------------------------- LogView.cached_term


def test_cached_term_answers_from_memory_only(store: DurableStorage) -> None:
    real = store._conn
    store._conn = _NoSQL()  # type: ignore[assignment]
    try:
        assert store.cached_term(SNAP) == 1  # the snapshot point
        assert store.cached_term(CACHE_BASE) == 2
        assert store.cached_term(LAST) == 2
        assert store.cached_term(CACHE_BASE - 1) is None  # only on disk
        assert store.cached_term(SNAP + 1) is None
        assert store.cached_term(SNAP - 1) is None  # compacted
        assert store.cached_term(0) is None
        assert store.cached_term(LAST + 1) is None  # beyond the end
    finally:
        store._conn = real
    for i in (SNAP, CACHE_BASE, LAST):
        assert store.cached_term(i) == store.term(i)


def test_cached_term_follows_appends_and_truncation(store: DurableStorage) -> None:
    store.save_ready(_ents(LAST + 1, LAST + 3, 3), HardState(3, 0, 20), None)
    assert [store.cached_term(i) for i in (LAST, LAST + 1, LAST + 3)] == [2, 3, 3]
    store.save_ready(_ents(LAST + 2, LAST + 2, 4), HardState(4, 0, 20), None)
    assert store.last_index() == LAST + 2
    assert [store.cached_term(i) for i in (LAST + 1, LAST + 2, LAST + 3)] == [3, 4, None]


def test_term_still_raises_outside_the_log(store: DurableStorage) -> None:
    """``term`` now goes through ``cached_term`` first; its errors are unchanged."""
    assert store.term(SNAP) == 1
    assert store.term(SNAP + 1) == 1  # from SQLite
    assert store.term(CACHE_BASE - 1) == 2
    with pytest.raises(Compacted):
        store.term(SNAP - 1)
    with pytest.raises(Unavailable):
        store.term(LAST + 1)
