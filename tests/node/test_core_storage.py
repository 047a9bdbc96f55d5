"""``wiring.CoreStorage``: the core's ``Storage`` over a real ``DurableStorage`` and the
backend's SQLite lock (``Backend._db``), which ``Backend.persist_log`` holds in the
worker thread during a leader's fsync.

Terms that memory knows (``LogView.cached_term``: the snapshot point and the cached
tail) are answered without the lock, so the loop never waits for the fsync to step an
acknowledgement; every SQLite read (entries, uncached terms, the initial state, the
snapshot) waits for the lock. Answers equal the storage's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pgraft.core.types import (
    Compacted,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Unavailable,
)
from pgraft.node.config import NodeConfig
from pgraft.node.runtime import Node
from pgraft.node.wiring import Backend, CoreStorage
from pgraft.storage import DurableStorage
from pgraft.storage.view import TERM_CACHE

WAIT = 10.0  # upper bound for anything that should happen promptly
BLOCKED = 0.2  # how long a call must stay blocked while the lock is held

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


class _Holder:
    """Holds ``lock`` in another thread until ``release()`` (or ``WAIT`` passes, so a
    test that wrongly waits for the lock fails instead of hanging)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._lock = lock
        self._held = threading.Event()
        self._release = threading.Event()
        self.timed_out = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._lock:
            self._held.set()
            self.timed_out = not self._release.wait(WAIT)

    def start(self) -> None:
        self._thread.start()
        assert self._held.wait(WAIT)

    def release(self) -> None:
        self._release.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()

    @property
    def holding(self) -> bool:
        return self._thread.is_alive() and not self._release.is_set()


@contextmanager
def _held(lock: threading.Lock) -> Iterator[_Holder]:
    holder = _Holder(lock)
    holder.start()
    try:
        yield holder
    finally:
        holder.release()


class _Call:
    """``fn()`` in a thread; ``done`` is set with its result or exception."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = fn()
            except BaseException as exc:
                self.error = exc
            finally:
                self.done.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self.done.wait(WAIT), "the call did not finish after the lock was released"
        self._thread.join(WAIT)


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


# ---------------------------------------------------------------- CoreStorage


@pytest.mark.parametrize("index", [SNAP, CACHE_BASE, CACHE_BASE + 1, LAST - 1, LAST])
def test_term_of_a_cached_index_does_not_wait_for_the_lock(
    store: DurableStorage, index: int
) -> None:
    lock = threading.Lock()
    core = CoreStorage(store, lock)
    expected = store.term(index)
    with _held(lock) as holder:
        call = _Call(lambda: core.term(index))
        assert call.done.wait(WAIT), f"term({index}) waited for the lock"
        assert holder.holding  # answered while the other thread still held the lock
        assert call.error is None
        assert call.result == expected


def test_bounds_do_not_wait_for_the_lock(store: DurableStorage) -> None:
    lock = threading.Lock()
    core = CoreStorage(store, lock)
    with _held(lock) as holder:
        call = _Call(lambda: (core.first_index(), core.last_index()))
        assert call.done.wait(WAIT)
        assert holder.holding
        assert call.result == (SNAP + 1, LAST)


READS: dict[str, Callable[[DurableStorage | CoreStorage], object]] = {
    "term of an index only on disk": lambda s: s.term(CACHE_BASE - 1),
    "term of the first index": lambda s: s.term(SNAP + 1),
    "term of a compacted index": lambda s: s.term(SNAP - 1),
    "term beyond the end": lambda s: s.term(LAST + 1),
    "entries on disk only": lambda s: s.entries(SNAP + 1, SNAP + 20),
    "entries of the cached tail": lambda s: s.entries(LAST - 5, LAST + 1),
    "entries with a size limit": lambda s: s.entries(LAST - 5, LAST + 1, 1),
    "entries beyond the end": lambda s: s.entries(LAST, LAST + 2),
    "initial_state": lambda s: s.initial_state(),
    "snapshot": lambda s: s.snapshot(),
}


@pytest.mark.parametrize("name", list(READS))
def test_sqlite_reads_wait_for_the_lock(store: DurableStorage, name: str) -> None:
    read = READS[name]
    try:
        expected: object = read(store)
        expected_error: type[BaseException] | None = None
    except (Compacted, Unavailable) as exc:
        expected, expected_error = None, type(exc)
    lock = threading.Lock()
    core = CoreStorage(store, lock)
    with _held(lock) as holder:
        call = _Call(lambda: read(core))
        assert not call.done.wait(BLOCKED), f"{name} did not wait for the lock"
        assert holder.holding
        holder.release()
        call.join()
    if expected_error is not None:
        assert isinstance(call.error, expected_error)
    else:
        assert call.error is None
        assert call.result == expected


def test_core_storage_is_a_view_of_writes_made_under_the_lock(store: DurableStorage) -> None:
    """What ``persist_log`` writes in the worker thread under the lock is what the core
    then reads through ``CoreStorage``."""
    lock = threading.Lock()
    core = CoreStorage(store, lock)
    new = _ents(LAST + 1, LAST + 4, 3)

    def persist() -> None:
        with lock:
            store.save_ready(new, HardState(3, 0, 20), None)

    writer = threading.Thread(target=persist)
    writer.start()
    writer.join(WAIT)
    assert core.last_index() == LAST + 4
    assert core.term(LAST + 4) == 3
    assert core.entries(LAST + 1, LAST + 5) == new
    assert core.initial_state() == (HardState(3, 0, 20), store.conf_state)


# ---------------------------------------------------------------- the wiring


def test_backend_and_core_share_the_sqlite_lock(tmp_path: Path) -> None:
    """``Backend.core_storage`` waits on ``Backend._db`` (the lock ``persist_log``
    holds), and the runtime's core reads through it."""
    config = NodeConfig(1, "c1", "127.0.0.1", 7001, str(tmp_path / "data"))
    backend = Backend(config, None, lambda _m: None, lambda _h: True)
    try:
        backend.storage.bootstrap(
            ConfState(voters=frozenset({1})), cluster_id=7, entries=_ents(1, 3, 1)
        )
        core = backend.core_storage
        assert isinstance(core, CoreStorage)
        node = Node(config, backend)
        node.start_core()
        assert node.raw is not None
        assert node.raw.raft.log.storage is core
        with _held(backend._db) as holder:
            call = _Call(lambda: core.entries(1, 4))
            assert not call.done.wait(BLOCKED), "entries did not wait for Backend._db"
            assert core.term(3) == 1  # cached: answered at once
            assert holder.holding
            holder.release()
            call.join()
        assert call.result == _ents(1, 3, 1)
    finally:
        backend.storage.close()
