"""The Raft log as the core sees it: durable storage plus an unstable tail.

Theory of operation
-------------------
Entries the core has accepted but the runtime has not yet persisted live in the
*unstable* part: a list starting at ``offset`` and, after a follower receives a
snapshot, an unstable snapshot. Reads prefer the unstable part for indexes
``>= offset`` and fall back to ``Storage`` below it. ``Ready`` hands the unstable part to
the runtime; ``stable_to``/``stable_snap_to`` drop it once persisted (only if it was not
replaced meanwhile, hence the term check).

Indexes obey ``applied <= applying <= committed <= last_index()`` and, except between
restoring a snapshot and the ``advance`` that persists it, ``first_index() - 1 <=
applied``. ``applying`` is the last index handed out in a ``Ready``. ``committed`` never
decreases; trying to commit past the end of the log, or to truncate a committed entry,
is a broken invariant and raises ``AssertionError`` (fail-stop).

Terms in a Raft log never decrease with the index, so searches by term are binary
searches, and by the Log Matching Property two logs agreeing on (index, term) agree on
everything before it, which makes conflict detection a binary search too.
"""

from __future__ import annotations

from collections.abc import Sequence

from pgraft.core.storage import Storage, limit_size
from pgraft.core.types import Compacted, Entry, Snapshot, Unavailable


class RaftLog:
    __slots__ = (
        "applied",
        "applying",
        "committed",
        "offset",
        "storage",
        "unstable",
        "unstable_snapshot",
    )

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.offset = storage.last_index() + 1
        self.unstable: list[Entry] = []
        self.unstable_snapshot: Snapshot | None = None
        first = storage.first_index()
        self.committed = first - 1
        self.applied = first - 1
        self.applying = first - 1  # last index handed out in a Ready (>= applied)

    # ------------------------------------------------------------ positions

    def first_index(self) -> int:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot.meta.index
        return self.storage.last_index()

    def term(self, index: int) -> int:
        """Term at ``index``; raises ``Compacted`` / ``Unavailable`` outside the log."""
        pos = index - self.offset
        if pos >= 0:
            if pos < len(self.unstable):
                return self.unstable[pos].term
            raise Unavailable(f"index {index} beyond last index {self.last_index()}")
        snap = self.unstable_snapshot
        if snap is not None:
            if index == snap.meta.index:
                return snap.meta.term
            raise Compacted(f"index {index} is compacted")
        return self.storage.term(index)

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Whether a log ending at (last_index, last_term) is at least as up to date."""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    # ------------------------------------------------------------ reads

    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> Sequence[Entry]:
        """Entries in ``[lo, hi)`` (at least one if not empty), limited to ``max_bytes``.
        Raises ``Compacted`` / ``Unavailable``."""
        if lo >= hi:
            return ()
        if lo < self.first_index():
            raise Compacted(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise Unavailable(f"index {hi - 1} beyond last index {self.last_index()}")
        off = self.offset
        if lo >= off:
            return limit_size(self.unstable[lo - off : hi - off], max_bytes)
        stored = self.storage.entries(lo, min(hi, off), max_bytes)
        if hi <= off or len(stored) < off - lo:
            return stored
        return limit_size(stored + self.unstable[: hi - off], max_bytes)

    def entries_from(self, lo: int, max_count: int, max_bytes: int | None) -> Sequence[Entry]:
        return self.slice(lo, min(self.last_index() + 1, lo + max_count), max_bytes)

    def has_next_committed(self) -> bool:
        return self.committed > self.applying and self.unstable_snapshot is None

    def next_committed(self) -> Sequence[Entry]:
        """Committed entries not yet handed out for applying."""
        lo = max(self.applying + 1, self.first_index())
        return self.slice(lo, self.committed + 1)

    def snapshot(self) -> Snapshot:
        if self.unstable_snapshot is not None:
            return self.unstable_snapshot
        return self.storage.snapshot()

    # ------------------------------------------------------------ searches

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry of ``ents`` missing from or conflicting with the log,
        or 0 when all are present. ``ents`` must follow an entry the log matches."""
        if not ents:
            return 0
        last = self.last_index()
        tail = ents[-1]
        if tail.index <= last and self.match_term(tail.index, tail.term):
            return 0
        if ents[0].index > last:
            return ents[0].index
        lo, hi = 0, len(ents) - 1  # ents[hi] conflicts; find the first that does
        while lo < hi:
            mid = (lo + hi) // 2
            e = ents[mid]
            if e.index <= last and self.match_term(e.index, e.term):
                lo = mid + 1
            else:
                hi = mid
        return ents[lo].index

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """The largest index ``<= index`` whose term is ``<= term`` (or the first index
        whose term is still readable when every readable one is larger)."""
        index = min(index, self.last_index())
        lo = self.first_index() - 1
        if index <= lo:
            return index
        if self.term(index) <= term:
            return index
        if self.term(lo) > term:
            return lo
        hi = index  # term(lo) <= term < term(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.term(mid) <= term:
                lo = mid
            else:
                hi = mid
        return lo

    # ------------------------------------------------------------ writes

    def maybe_append(
        self, prev_index: int, prev_term: int, commit: int, ents: Sequence[Entry]
    ) -> int | None:
        """Follower side of AppendEntries: None if the log does not contain
        (prev_index, prev_term), else the index of the last entry known to match."""
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            assert ci > self.committed, f"conflict at {ci} <= committed {self.committed}"
            self.append(ents[ci - prev_index - 1 :])
        self.commit_to(min(commit, last_new))
        return last_new

    def append(self, ents: Sequence[Entry]) -> None:
        """Append to the unstable tail, truncating anything from ``ents[0].index``."""
        if not ents:
            return
        after = ents[0].index
        assert after > self.committed, f"truncating committed {self.committed} at {after}"
        unstable = self.unstable
        end = self.offset + len(unstable)
        if after == end:
            unstable.extend(ents)
        elif after <= self.offset:
            self.offset = after
            self.unstable = list(ents)
        else:
            del unstable[after - self.offset :]
            unstable.extend(ents)

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} past last {self.last_index()}"
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit up to ``index`` if the entry there is of ``term`` (Raft §5.4.2)."""
        if index > self.committed and self.match_term(index, term):
            self.committed = index
            return True
        return False

    def applied_to(self, index: int) -> None:
        assert index <= self.committed, f"applied {index} > committed {self.committed}"
        if index > self.applied:
            self.applied = index
        if index > self.applying:
            self.applying = index

    def stable_to(self, index: int, term: int) -> None:
        """The runtime persisted entries up to (index, term)."""
        pos = index - self.offset
        if 0 <= pos < len(self.unstable) and self.unstable[pos].term == term:
            del self.unstable[: pos + 1]
            self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        snap = self.unstable_snapshot
        if snap is not None and snap.meta.index == index:
            self.unstable_snapshot = None

    def restore(self, snap: Snapshot) -> None:
        """Replace the log with ``snap`` (follower catching up through a snapshot)."""
        index = snap.meta.index
        self.committed = index
        self.applying = index
        self.unstable_snapshot = snap
        self.unstable = []
        self.offset = index + 1
