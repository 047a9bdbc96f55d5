"""``EntryCache`` and its use by ``DurableStorage``.

Unit behaviour (get/append/trim/compact/reset), a rule-based model test of the cache
against a plain run of entries, and the storage's reads with the cache in the way:
cached and uncached ranges, conflicting appends, compaction, snapshots, rolled-back
transactions, reopen and ``max_bytes``, always compared with what was written and with
a freshly opened storage (whose cache is empty, so every read goes to SQLite).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from storage_helpers import ents, open_store

import pgraft.storage.view as view_module
from pgraft.core.types import (
    Compacted,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
    SnapshotMeta,
    Unavailable,
)
from pgraft.storage import DurableStorage, StorageFailure
from pgraft.storage.entrycache import EntryCache


def _run(first: int, sizes: list[int], term: int = 1, tag: str = "") -> list[Entry]:
    """Entries from ``first`` whose data have the given sizes (and are told apart by
    index, term and ``tag`` as long as the size allows)."""
    out = []
    for k, size in enumerate(sizes):
        label = f"{first + k}/{term}{tag}:".encode()
        out.append(Entry(term, first + k, EntryType.NORMAL, (label * (size + 1))[:size]))
    return out


def _held(cache: EntryCache, end: int, floor: int = -5) -> tuple[int, list[Entry]]:
    """The run ``[lo, end)`` the cache serves, found through ``get`` alone: the
    smallest ``lo >= floor`` with ``get(lo, end)`` not None (``end`` if none)."""
    for lo in range(floor, end):
        got = cache.get(lo, end)
        if got is not None:
            return lo, got
    return end, []


def _size(entries: list[Entry]) -> int:
    return sum(len(e.data) for e in entries)


# ---------------------------------------------------------------- unit behaviour


def test_get_of_a_fully_cached_range_and_of_anything_else() -> None:
    cache = EntryCache(100, 1 << 20)
    run = _run(5, [3, 3, 3, 3])  # 5..8
    cache.append(run)
    assert cache.get(5, 9) == run
    assert cache.get(6, 8) == run[1:3]
    assert cache.get(8, 9) == run[3:]
    assert cache.get(4, 9) is None  # starts before the run
    assert cache.get(4, 6) is None
    assert cache.get(7, 10) is None  # ends after it
    assert cache.get(9, 10) is None
    assert cache.get(1, 3) is None


def test_get_returns_a_copy() -> None:
    cache = EntryCache(100, 1 << 20)
    run = _run(1, [1, 2, 3])
    cache.append(run)
    got = cache.get(1, 4)
    assert got is not None
    got.clear()
    assert cache.get(1, 4) == run


def test_empty_cache_serves_nothing() -> None:
    cache = EntryCache(100, 1 << 20)
    assert cache.get(1, 2) is None
    cache.reset(10)
    assert cache.get(9, 10) is None
    assert cache.get(10, 11) is None


def test_append_at_the_end_extends() -> None:
    cache = EntryCache(100, 1 << 20)
    a, b = _run(1, [2, 2, 2]), _run(4, [2, 2])
    cache.append(a)
    cache.append(b)
    assert cache.get(1, 6) == a + b


def test_append_inside_replaces_the_tail() -> None:
    cache = EntryCache(100, 1 << 20)
    old = _run(1, [4] * 6)
    cache.append(old)
    new = _run(3, [5, 5], term=2)
    cache.append(new)
    assert cache.get(1, 5) == old[:2] + new
    assert cache.get(1, 6) is None  # 5 and 6 are gone with the old tail
    assert cache.get(5, 6) is None


def test_append_at_the_base_replaces_everything() -> None:
    cache = EntryCache(100, 1 << 20)
    cache.append(_run(3, [1, 1, 1]))
    new = _run(3, [2], term=2)
    cache.append(new)
    assert _held(cache, 4) == (3, new)
    assert cache.get(3, 5) is None


def test_append_after_a_gap_restarts_the_run() -> None:
    cache = EntryCache(100, 1 << 20)
    cache.append(_run(1, [1, 1]))
    new = _run(5, [2, 2])  # 3 and 4 are unknown
    cache.append(new)
    assert _held(cache, 7) == (5, new)
    assert cache.get(1, 2) is None
    assert cache.get(2, 3) is None


def test_append_before_the_base_restarts_the_run() -> None:
    cache = EntryCache(100, 1 << 20)
    cache.append(_run(10, [1, 1, 1]))
    new = _run(7, [3, 3], term=4)
    cache.append(new)
    assert _held(cache, 9) == (7, new)
    assert cache.get(10, 11) is None
    assert cache.get(7, 13) is None


def test_trim_by_count_waits_for_25_percent_then_goes_back_to_the_limit() -> None:
    cache = EntryCache(8, 1 << 20)
    run = _run(1, [1] * 10)  # 10 = 1.25 * 8: kept whole
    cache.append(run)
    assert _held(cache, 11) == (1, run)
    nxt = _run(11, [1])  # 11 > 10: back to the last 8
    cache.append(nxt)
    assert _held(cache, 12) == (4, (run + nxt)[3:])


def test_one_long_append_is_trimmed_by_count() -> None:
    cache = EntryCache(3, 1 << 20)
    run = _run(1, [1] * 10)
    cache.append(run)
    assert _held(cache, 11) == (8, run[7:])


def test_trim_by_bytes_waits_for_25_percent_then_goes_back_to_the_limit() -> None:
    cache = EntryCache(1000, 100)
    run = _run(1, [25] * 5)  # 125 bytes = 1.25 * 100: kept whole
    cache.append(run)
    assert _held(cache, 6) == (1, run)
    nxt = _run(6, [10])  # 135 > 125: back to at most 100 bytes
    cache.append(nxt)
    lo, held = _held(cache, 7)
    assert (lo, held) == (3, (run + nxt)[2:])  # 25 * 3 + 10 = 85; one more would be 110
    assert _size(held) <= 100


def test_trim_by_bytes_keeps_as_many_entries_as_fit() -> None:
    cache = EntryCache(1000, 10)
    run = _run(1, [20, 1, 2, 3, 4])  # 30 bytes > 12.5
    cache.append(run)
    assert _held(cache, 6) == (2, run[1:])  # 1 + 2 + 3 + 4 = 10 fits exactly


def test_the_newest_entry_stays_even_if_larger_than_max_bytes() -> None:
    cache = EntryCache(1000, 10)
    cache.append(_run(1, [3, 3]))
    big = _run(3, [50])
    cache.append(big)
    assert _held(cache, 4) == (3, big)
    bigger = _run(4, [60, 70])  # two large ones: only the newest stays
    cache.append(bigger)
    assert _held(cache, 6) == (5, bigger[1:])
    small = _run(6, [1])  # the next append trims the big one away
    cache.append(small)
    assert _held(cache, 7) == (6, small)


def test_trim_with_both_limits_exceeded_honours_both() -> None:
    cache = EntryCache(4, 20)
    run = _run(1, [1, 1, 1, 1, 1, 1, 9, 9])  # 8 entries > 5, 24 bytes
    cache.append(run)
    lo, held = _held(cache, 9)
    # The last 4 are 1 + 1 + 9 + 9 = 20 bytes: within both limits.
    assert (lo, held) == (5, run[4:])
    cache2 = EntryCache(4, 15)
    cache2.append(run)
    assert _held(cache2, 9) == (8, run[7:])  # 9 + 9 = 18 > 15: only the newest


def test_compact_drops_the_head() -> None:
    cache = EntryCache(100, 1 << 20)
    run = _run(1, [2] * 5)
    cache.append(run)
    cache.compact(2)
    assert _held(cache, 6) == (3, run[2:])
    cache.compact(1)  # below the base: nothing changes
    assert _held(cache, 6) == (3, run[2:])
    cache.compact(5)  # everything
    assert _held(cache, 6) == (6, [])
    nxt = _run(6, [1])  # the entry after the compaction point starts the run again
    cache.append(nxt)
    assert _held(cache, 7) == (6, nxt)


def test_compact_then_trim_accounts_bytes_correctly() -> None:
    cache = EntryCache(1000, 100)
    cache.append(_run(1, [40, 40]))
    cache.compact(1)  # 40 bytes left
    run = _run(3, [40, 40])  # 120 bytes: kept (<= 125)
    cache.append(run)
    lo, held = _held(cache, 5)
    assert lo == 2 and _size(held) == 120
    cache.append(_run(5, [10]))  # 130 > 125: back to <= 100
    lo, held = _held(cache, 6)
    assert lo == 3 and _size(held) == 90


def test_reset() -> None:
    cache = EntryCache(100, 1 << 20)
    cache.append(_run(1, [1, 2, 3]))
    cache.reset(20)
    assert _held(cache, 4, floor=0) == (4, [])
    assert cache.get(1, 2) is None
    run = _run(20, [7])
    cache.append(run)
    assert _held(cache, 21, floor=0) == (20, run)


# ---------------------------------------------------------------- model


class CacheModel(RuleBasedStateMachine):
    """The model is the contiguous run ``[base, base + len(run))`` the cache was told
    about (appends replace from their first index; a gap or an append before the run
    restarts it; compact drops the head; reset forgets). The cache must serve a suffix
    of it, exactly the one the trimming rule gives, and nothing else."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = EntryCache(1, 0)
        self.max_entries = 1
        self.max_bytes = 0
        self.base = 1
        self.run: list[Entry] = []
        self.serial = 0
        # The first index of the suffix the cache must hold (exactly).
        self.expected_lo = 1

    @property
    def end(self) -> int:
        return self.base + len(self.run)

    @initialize(
        max_entries=st.integers(1, 8),
        max_bytes=st.integers(0, 60),
        start=st.integers(1, 5),
    )
    def setup(self, max_entries: int, max_bytes: int, start: int) -> None:
        self.cache = EntryCache(max_entries, max_bytes)
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.cache.reset(start)
        self.base, self.run, self.expected_lo = start, [], start

    def _fits(self, entries: list[Entry]) -> bool:
        return len(entries) <= self.max_entries and _size(entries) <= self.max_bytes

    def _within_slack(self, entries: list[Entry]) -> bool:
        return len(entries) * 4 <= self.max_entries * 5 and _size(entries) * 4 <= self.max_bytes * 5

    @rule(
        where=st.sampled_from(["end", "inside", "gap", "before"]),
        data=st.data(),
        sizes=st.lists(st.integers(0, 20), min_size=1, max_size=10),
        term=st.integers(1, 3),
    )
    def append(self, where: str, data: st.DataObject, sizes: list[int], term: int) -> None:
        held_lo, held = _held(self.cache, self.end, floor=self.base - 5)
        if where == "end" or (where == "inside" and not self.run):
            first = self.end
        elif where == "inside":
            first = data.draw(st.integers(self.base, self.end - 1), label="first")
        elif where == "gap":
            first = self.end + data.draw(st.integers(1, 3), label="gap")
        else:
            first = max(1, self.base - data.draw(st.integers(1, 3), label="before"))
        self.serial += 1
        new = _run(first, sizes, term=term, tag=f"#{self.serial}")
        # What the cache held that the append keeps, then the new run.
        kept = held[: first - held_lo] if held and held_lo <= first <= self.end else []
        combined = kept + new
        if self.base <= first <= self.end:
            self.run = self.run[: first - self.base] + new
        else:
            self.base, self.run = first, list(new)
        self.cache.append(new)
        # The trimming rule: whole if within 125% of both limits, else the longest
        # suffix within the limits (at least the newest entry).
        if self._within_slack(combined):
            keep = combined
        else:
            n = 1
            while n < len(combined) and self._fits(combined[-(n + 1) :]):
                n += 1
            keep = combined[-n:]
        lo, got = _held(self.cache, self.end, floor=self.base - 5)
        assert got == keep, (lo, got, keep)
        self.expected_lo = self.end - len(keep)

    @precondition(lambda self: self.run)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(self.base - 2, self.end), label="index")
        held_lo, _ = _held(self.cache, self.end, floor=self.base - 5)
        self.cache.compact(index)
        if index >= self.base:
            drop = min(index + 1 - self.base, len(self.run))
            self.run = self.run[drop:]
            self.base += drop
        self.expected_lo = max(held_lo, min(index + 1, self.end))

    @rule(base=st.integers(1, 30))
    def reset(self, base: int) -> None:
        self.cache.reset(base)
        self.base, self.run, self.expected_lo = base, [], base

    @invariant()
    def serves_exactly_the_model(self) -> None:
        lo, got = _held(self.cache, self.end, floor=self.base - 5)
        assert lo == self.expected_lo
        assert lo >= self.base
        assert got == self.run[lo - self.base :]
        # Every sub-range of what is held is served, and equals the model.
        for a in range(lo, self.end):
            for b in range(a + 1, self.end + 1):
                assert self.cache.get(a, b) == self.run[a - self.base : b - self.base]
        # Nothing before the held run, nor past the end, is served.
        for a in range(self.base - 3, lo):
            assert self.cache.get(a, self.end) is None
        for a in range(lo, self.end + 1):
            assert self.cache.get(a, self.end + 1) is None

    @invariant()
    def within_125_percent_of_the_limits(self) -> None:
        _, held = _held(self.cache, self.end, floor=self.base - 5)
        assert len(held) * 4 <= self.max_entries * 5
        assert _size(held) * 4 <= self.max_bytes * 5 or len(held) == 1


CacheModel.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
test_cache_model = CacheModel.TestCase


# ---------------------------------------------------------------- storage integration


@pytest.fixture
def small_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Storages opened in the test cache at most 8 entries / 200 bytes (250 with the
    slack) of the most recent ones."""
    monkeypatch.setattr(view_module, "RECENT_ENTRIES", 8)
    monkeypatch.setattr(view_module, "RECENT_BYTES", 200)


class ReadSpy:
    """Counts the storage's SQLite range reads (``LogView._read``)."""

    def __init__(self, storage: DurableStorage) -> None:
        self.calls: list[tuple[int, int]] = []
        inner: Callable[[int, int, int | None], list[Entry]] = storage._read

        def spy(lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
            self.calls.append((lo, hi))
            return inner(lo, hi, max_bytes)

        storage._read = spy  # type: ignore[method-assign]

    def take(self) -> list[tuple[int, int]]:
        calls, self.calls = self.calls, []
        return calls


def _cached_lo(storage: DurableStorage) -> int:
    """The first index of the run the storage's cache serves (last + 1 if none)."""
    lo, _ = _held(storage._recent, storage.last_index() + 1, floor=0)
    return lo


def _all_ranges(storage: DurableStorage) -> Iterator[tuple[int, int]]:
    for lo in range(storage.first_index(), storage.last_index() + 1):
        for hi in range(lo + 1, storage.last_index() + 2):
            yield lo, hi


def _read_all(storage: DurableStorage) -> dict[tuple[int, int], list[Entry]]:
    return {(lo, hi): storage.entries(lo, hi) for lo, hi in _all_ranges(storage)}


def test_cached_and_older_ranges_read_back_what_was_written(
    tmp_path: Path, small_cache: None
) -> None:
    written: list[Entry] = []
    with open_store(tmp_path) as st_:
        spy = ReadSpy(st_)
        for first in range(1, 31, 3):
            batch = _run(first, [5, 17, 0], term=1 + first // 10)
            st_.save_ready(batch, None, None)
            written += batch
        assert st_.last_index() == 30
        cached_lo = _cached_lo(st_)
        assert 22 <= cached_lo <= 30  # at most 8 (or 10 before a trim) entries
        spy.take()
        for lo, hi in _all_ranges(st_):
            assert st_.entries(lo, hi) == written[lo - 1 : hi - 1], (lo, hi)
            # Fully cached ranges never touch SQLite; the others are one query.
            assert spy.take() == ([] if lo >= cached_lo else [(lo, hi)]), (lo, hi)
        live = _read_all(st_)
    with open_store(tmp_path) as st_:
        assert _cached_lo(st_) == 31  # nothing cached after open
        assert _read_all(st_) == live


def test_returned_lists_do_not_alias_the_cache(store: DurableStorage) -> None:
    store.save_ready(ents(1, 5, 1), None, None)
    got = store.entries(1, 6)
    got.clear()
    got = store.entries(2, 4, max_bytes=0)
    got.append(ents(9, 9, 9)[0])
    assert store.entries(1, 6) == ents(1, 5, 1)


def test_reads_before_any_write_after_open_come_from_sqlite(tmp_path: Path) -> None:
    with open_store(tmp_path) as st_:
        st_.save_ready(ents(1, 10, 1), HardState(1, 0, 5), None)
    with open_store(tmp_path) as st_:
        spy = ReadSpy(st_)
        assert st_.entries(1, 11) == ents(1, 10, 1)
        assert spy.take() == [(1, 11)]
        st_.save_ready(ents(11, 12, 2), None, None)  # cached from here on
        assert st_.entries(11, 13) == ents(11, 12, 2)
        assert st_.entries(10, 13) == [*ents(10, 10, 1), *ents(11, 12, 2)]
        assert spy.take() == [(10, 13)]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(17, id="inside-the-cache"),
        pytest.param(9, id="before-the-cache"),
        pytest.param(21, id="at-the-last-entry"),
    ],
)
def test_conflicting_append_returns_the_new_entries(
    tmp_path: Path, small_cache: None, first: int
) -> None:
    with open_store(tmp_path) as st_:
        st_.save_ready(ents(1, 21, 1), HardState(1, 0, 2), None)
        assert _cached_lo(st_) > 3
        new = ents(first, first + 2, 2, tag="-new")
        st_.save_ready(new, None, None)
        expected = [*ents(1, first - 1, 1), *new]
        assert st_.last_index() == first + 2
        spy = ReadSpy(st_)
        assert st_.entries(first, first + 3) == new
        assert spy.take() == []  # just written: served from memory
        for lo, hi in _all_ranges(st_):
            assert st_.entries(lo, hi) == expected[lo - 1 : hi - 1], (lo, hi)
        with pytest.raises(Unavailable):
            st_.entries(first + 3, first + 4)
        live = _read_all(st_)
    with open_store(tmp_path) as st_:
        assert _read_all(st_) == live


def test_compacted_ranges_raise_even_where_they_were_cached(store: DurableStorage) -> None:
    store.save_ready([*ents(1, 10, 1), *ents(11, 20, 2)], HardState(2, 0, 15), None)
    with store.transaction():
        store.set_applied(15, store.conf_state)
    assert store.entries(1, 21) == [*ents(1, 10, 1), *ents(11, 20, 2)]  # all cached
    store.compact(12)
    for lo in range(1, 13):
        with pytest.raises(Compacted):
            store.entries(lo, 14)
        with pytest.raises(Compacted):
            store.entries(lo, lo + 1)
    assert store._recent.get(12, 13) is None
    spy = ReadSpy(store)
    assert store.entries(13, 21) == ents(13, 20, 2)
    assert spy.take() == []  # what was not compacted is still cached
    store.save_ready(ents(21, 22, 2), HardState(2, 0, 20), None)
    assert store.entries(13, 23) == ents(13, 20, 2) + ents(21, 22, 2)
    assert spy.take() == []


def test_compaction_past_the_cache_with_a_small_cache(tmp_path: Path, small_cache: None) -> None:
    with open_store(tmp_path) as st_:
        st_.save_ready(ents(1, 30, 1), HardState(1, 0, 30), None)
        with st_.transaction():
            st_.set_applied(30, st_.conf_state)
        st_.compact(26)  # inside the cached run
        with pytest.raises(Compacted):
            st_.entries(26, 27)
        assert st_.entries(27, 31) == ents(27, 30, 1)
        st_.compact(30)  # everything
        assert st_.entries(31, 31) == []
        with pytest.raises(Compacted):
            st_.entries(30, 31)
        st_.save_ready(ents(31, 33, 1), None, None)
        assert st_.entries(31, 34) == ents(31, 33, 1)
        assert _cached_lo(st_) == 31
    with open_store(tmp_path) as st_:
        assert st_.entries(31, 34) == ents(31, 33, 1)


def test_snapshot_install_resets_the_cache(store: DurableStorage) -> None:
    store.save_ready(ents(1, 5, 1), HardState(1, 0, 2), None)
    snap = Snapshot(SnapshotMeta(40, 3, ConfState(frozenset({1}))), b"")
    store.save_ready(ents(41, 42, 3), HardState(3, 0, 41), snap)
    assert store._recent.get(1, 6) is None
    with pytest.raises(Compacted):
        store.entries(5, 6)
    with pytest.raises(Compacted):
        store.entries(40, 42)
    spy = ReadSpy(store)
    assert store.entries(41, 43) == ents(41, 42, 3)
    assert spy.take() == []


def test_snapshot_alone_inside_the_cached_run_empties_the_cache(store: DurableStorage) -> None:
    store.save_ready(ents(1, 10, 1), HardState(1, 0, 2), None)
    snap = Snapshot(SnapshotMeta(5, 1, ConfState(frozenset({1}))), b"")
    store.save_ready((), None, snap)  # the whole log goes, the last index becomes 5
    assert (store.first_index(), store.last_index()) == (6, 5)
    assert _held(store._recent, 11, floor=0) == (11, [])  # 6..10 are not cached any more
    with pytest.raises(Unavailable):
        store.entries(6, 7)
    new = ents(6, 7, 2)
    store.save_ready(new, None, None)
    assert _held(store._recent, 8, floor=0) == (6, new)
    assert store.entries(6, 8) == new


def test_snapshot_then_entries_that_it_covers_partly(store: DurableStorage) -> None:
    snap = Snapshot(SnapshotMeta(10, 2, ConfState(frozenset({1}))), b"")
    # Entries 9..12 arrive with the snapshot at 10: 9 and 10 are covered by it.
    store.save_ready(ents(9, 12, 2), HardState(2, 0, 10), snap)
    assert (store.first_index(), store.last_index()) == (11, 12)
    assert store.entries(11, 13) == ents(11, 12, 2)
    assert store._recent.get(11, 13) == ents(11, 12, 2)
    assert store._recent.get(10, 11) is None


@pytest.mark.parametrize("how", ["invariant", "hook"])
def test_rolled_back_transaction_is_not_served_from_the_cache(tmp_path: Path, how: str) -> None:
    old = ents(1, 6, 1)
    with open_store(tmp_path) as st_:
        st_.save_ready(old, HardState(1, 0, 2), None)
        assert st_._recent.get(1, 7) == old
        replacement = ents(4, 8, 2, tag="-rolled-back")
        with pytest.raises((StorageFailure, RuntimeError)) as info:
            if how == "invariant":
                # The entries are fine, but the commit index would go back: the whole
                # Ready (with its truncating append) is rolled back.
                st_.save_ready(replacement, HardState(2, 0, 1), None)
            else:

                def boom() -> None:
                    raise RuntimeError("apply failed")

                st_.save_ready(replacement, HardState(2, 0, 2), None, applied_updates=boom)
        assert isinstance(info.value, StorageFailure if how == "invariant" else RuntimeError)
        assert st_.last_index() == 6
        assert st_.entries(1, 7) == old
        assert st_.entries(4, 7) == old[3:]
        with pytest.raises(Unavailable):
            st_.entries(7, 9)
        assert st_._recent.get(4, 5) is None  # reloaded: nothing cached
        # The cache works again for what is written next.
        more = ents(7, 8, 1)
        st_.save_ready(more, None, None)
        spy = ReadSpy(st_)
        assert st_.entries(7, 9) == more
        assert spy.take() == []
        assert st_.entries(1, 9) == old + more
    with open_store(tmp_path) as st_:
        assert st_.entries(1, 9) == old + more


def test_rolled_back_snapshot_install_is_not_served(store: DurableStorage) -> None:
    store.save_ready(ents(1, 5, 1), HardState(1, 0, 3), None)
    with store.transaction():
        store.set_applied(3, store.conf_state)
    snap = Snapshot(SnapshotMeta(2, 1, ConfState(frozenset({1}))), b"")  # not above applied
    with pytest.raises(StorageFailure, match="not above applied"):
        store.save_ready(ents(3, 4, 1), None, snap)
    assert (store.first_index(), store.last_index()) == (1, 5)
    assert store.entries(1, 6) == ents(1, 5, 1)


def test_refused_append_leaves_reads_unchanged(store: DurableStorage) -> None:
    store.save_ready(ents(1, 4, 1), HardState(1, 0, 4), None)
    with pytest.raises(StorageFailure, match="truncate committed"):
        store.save_ready(ents(2, 3, 2), None, None)
    assert store.entries(1, 5) == ents(1, 4, 1)


def test_reset_empties_the_cache(tmp_path: Path) -> None:
    conf = ConfState(frozenset({1}))
    with open_store(tmp_path) as st_:
        st_.save_ready(ents(1, 5, 1), HardState(1, 0, 2), None)
        st_.reset()
        assert st_.entries(1, 1) == []
        with pytest.raises(Unavailable):
            st_.entries(1, 2)
        assert st_._recent.get(1, 2) is None
        boot = [Entry(1, 1, EntryType.CONF_CHANGE, b"boot")]
        st_.bootstrap(conf, cluster_id=5, entries=boot)
        assert st_.entries(1, 2) == boot
        assert st_._recent.get(1, 2) == boot
    with open_store(tmp_path) as st_:
        assert st_.entries(1, 2) == boot


def test_a_replaced_small_cache_is_used(tmp_path: Path) -> None:
    with open_store(tmp_path) as st_:
        st_._recent = EntryCache(3, 1 << 20)
        st_._recent.reset(st_.last_index() + 1)
        st_.save_ready(ents(1, 10, 1), None, None)
        spy = ReadSpy(st_)
        assert st_.entries(8, 11) == ents(8, 10, 1)
        assert spy.take() == []
        assert st_.entries(7, 11) == ents(7, 10, 1)
        assert spy.take() == [(7, 11)]


# ---------------------------------------------------------------- max_bytes


def _prefix_within(entries: list[Entry], max_bytes: int | None) -> list[Entry]:
    """The longest prefix (at least one entry) whose data fits ``max_bytes``."""
    if max_bytes is None:
        return entries
    out: list[Entry] = []
    size = 0
    for e in entries:
        size += len(e.data)
        if out and size > max_bytes:
            break
        out.append(e)
    return out


_SIZES = [0, 7, 0, 0, 13, 1, 30, 2, 0, 9, 5, 40]


def test_max_bytes_answers_agree_between_cache_and_sqlite(tmp_path: Path) -> None:
    written = _run(1, _SIZES)
    n = len(written)
    queries = [
        (lo, hi, mb)
        for lo in range(1, n + 1)
        for hi in range(lo + 1, n + 2)
        for mb in (None, -1, 0, 1, 7, 8, 12, 13, 20, 31, 50, 200)
    ]
    with open_store(tmp_path) as st_:
        st_.save_ready(written, None, None)
        spy = ReadSpy(st_)
        cached = {q: st_.entries(*q) for q in queries}
        assert spy.take() == []  # everything came from the cache
    with open_store(tmp_path) as st_:
        spy = ReadSpy(st_)
        fresh = {q: st_.entries(*q) for q in queries}
        assert len(spy.take()) == len(queries)  # everything came from SQLite
    for q in queries:
        lo, hi, mb = q
        assert cached[q] == fresh[q] == _prefix_within(written[lo - 1 : hi - 1], mb), q


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 30), min_size=1, max_size=12),
    queries=st.lists(
        st.tuples(st.integers(0, 11), st.integers(1, 12), st.integers(-1, 100) | st.none()),
        min_size=1,
        max_size=15,
    ),
)
def test_max_bytes_property(sizes: list[int], queries: list[tuple[int, int, int | None]]) -> None:
    written = _run(1, sizes)
    n = len(written)
    qs = [(1 + lo % n, 1 + lo % n + min(k, n - lo % n), mb) for lo, k, mb in queries]
    with tempfile.TemporaryDirectory() as tmp:
        with open_store(Path(tmp)) as st_:
            st_.save_ready(written, None, None)
            cached = [st_.entries(*q) for q in qs]
        with open_store(Path(tmp)) as st_:
            assert st_._recent.get(1, 2) is None
            fresh = [st_.entries(*q) for q in qs]
    for q, a, b in zip(qs, cached, fresh, strict=True):
        lo, hi, mb = q
        assert a == b == _prefix_within(written[lo - 1 : hi - 1], mb), q


# ---------------------------------------------------------------- random storage runs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_writes_read_back_like_a_model_log(data: st.DataObject) -> None:
    """Random appends (extending or conflicting above the commit index), compactions
    and failed Readies on a storage with a tiny cache: every range reads back as the
    model log, and a reopened storage (empty cache) agrees."""
    log: dict[int, Entry] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        store = open_store(path)
        try:
            store._recent = EntryCache(
                data.draw(st.integers(1, 6), label="max_entries"),
                data.draw(st.integers(0, 80), label="max_bytes"),
            )
            store._recent.reset(1)
            term, serial = 1, 0
            for _ in range(data.draw(st.integers(1, 10), label="steps")):
                last, commit = store.last_index(), store.hard_state.commit
                op = data.draw(st.sampled_from(["append", "append", "compact", "fail"]))
                serial += 1
                if op == "compact":
                    if store.applied < commit:
                        with store.transaction():
                            store.set_applied(commit, store.conf_state)
                    store.compact(data.draw(st.integers(store.first_index() - 1, commit)))
                    for i in [i for i in log if i < store.first_index()]:
                        del log[i]
                    continue
                lowest = max(commit + 1, store.first_index())
                first = data.draw(st.integers(lowest, last + 1), label="first")
                term += data.draw(st.integers(0, 1), label="term step")
                sizes = data.draw(st.lists(st.integers(0, 25), min_size=1, max_size=5))
                batch = _run(first, sizes, term=term, tag=f"#{serial}")
                new_commit = data.draw(st.integers(commit, batch[-1].index), label="commit")
                if op == "fail":
                    with pytest.raises(StorageFailure):  # commit going back: rolled back
                        store.save_ready(batch, HardState(term, 0, commit - 1), None)
                else:
                    store.save_ready(batch, HardState(term, 0, new_commit), None)
                    for i in [i for i in log if i >= first]:
                        del log[i]
                    log.update((e.index, e) for e in batch)
                assert store.last_index() == max(log, default=store.first_index() - 1)
                end = store.last_index() + 1
                for lo in range(store.first_index(), end):
                    for hi in {lo + 1, end}:
                        if lo < hi:
                            want = [log[i] for i in range(lo, hi)]
                            assert store.entries(lo, hi) == want, (lo, hi)
            live = _read_all(store)
        finally:
            store.close()
        with open_store(path) as again:
            assert _read_all(again) == live
