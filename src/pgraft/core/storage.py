"""The read-only storage view the Raft core needs, and an in-memory implementation.

Theory of operation
-------------------
The core never writes to storage: it hands the runtime a ``Ready`` with the entries,
hard state and snapshot to persist, and reads back through ``Storage`` only what is
already durable. A storage holds a *snapshot* (an image of the state machine up to
``snapshot.meta.index``, with the term there and the configuration then) followed by the
log entries after it. ``first_index()`` is therefore ``snapshot.meta.index + 1``; the
term of ``snapshot.meta.index`` itself stays readable (it is the "dummy" entry that lets
a leader name ``prev_term`` for the first entry it sends).

``initial_state()`` returns the hard state and the configuration recorded with the
latest snapshot (or any later one). On restart the core re-applies the configuration
changes found in the log between the snapshot and ``Config.applied``; every single-server
change assigns one member's role, so re-applying one that is already reflected changes
nothing.

``MemoryStorage`` keeps the entries in a list whose element 0 is that dummy entry; it is
the reference implementation used by tests and the simulator, and the model a durable
storage follows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pgraft.core.types import (
    Compacted,
    ConfState,
    Entry,
    HardState,
    Snapshot,
    SnapshotMeta,
    StorageError,
    Unavailable,
)


class Storage(Protocol):
    """What the core reads. Every method reflects durable state only."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``, at least one if the range is not empty, then as many
        as fit in ``max_bytes`` of data. Raises ``Compacted`` if ``lo <= snapshot
        index`` and ``Unavailable`` if ``hi > last_index() + 1``."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at ``index`` (the snapshot's index included). Raises
        ``Compacted`` below it and ``Unavailable`` beyond ``last_index()``."""
        ...

    def first_index(self) -> int: ...

    def last_index(self) -> int: ...

    def snapshot(self) -> Snapshot:
        """The latest snapshot. May raise ``Unavailable`` while one is being built."""
        ...


def limit_size(ents: Sequence[Entry], max_bytes: int | None) -> Sequence[Entry]:
    """The longest prefix of ``ents`` (at least one entry) whose data fits ``max_bytes``."""
    if max_bytes is None or len(ents) <= 1:
        return ents
    if sum([len(e.data) for e in ents]) <= max_bytes:
        return ents
    size = 0
    for i, e in enumerate(ents):
        size += len(e.data)
        if size > max_bytes:
            return ents[: max(i, 1)]
    return ents


class SnapshotOutOfDate(StorageError):
    """A snapshot older than (or as old as) the one already held was offered."""


class MemoryStorage:
    """Storage in memory. ``_ents[0]`` is the dummy entry at the snapshot's index."""

    __slots__ = ("_ents", "_hard_state", "_snapshot")

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(0, 0)]

    @classmethod
    def bootstrap(cls, conf_state: ConfState) -> MemoryStorage:
        """A fresh storage whose initial configuration is ``conf_state`` (a snapshot at
        index 0 carrying it)."""
        storage = cls()
        storage._snapshot = Snapshot(SnapshotMeta(0, 0, conf_state))
        return storage

    # ------------------------------------------------------------ Storage protocol

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.meta.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        offset = self._ents[0].index
        if lo <= offset:
            raise Compacted(f"index {lo} is compacted (first index {offset + 1})")
        if hi > offset + len(self._ents):
            raise Unavailable(f"index {hi - 1} beyond last index {self.last_index()}")
        ents = self._ents[lo - offset : hi - offset]
        if max_bytes is None:
            return ents
        return list(limit_size(ents, max_bytes))

    def term(self, index: int) -> int:
        offset = self._ents[0].index
        if index < offset:
            raise Compacted(f"index {index} is compacted (first index {offset + 1})")
        if index - offset >= len(self._ents):
            raise Unavailable(f"index {index} beyond last index {self.last_index()}")
        return self._ents[index - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # ------------------------------------------------------------ writes (runtime)

    @property
    def hard_state(self) -> HardState:
        return self._hard_state

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def append(self, entries: Sequence[Entry]) -> None:
        """Append ``entries``, first truncating the stored log from
        ``entries[0].index``. Entries at or below the snapshot index are skipped.
        Raises ``Unavailable`` if the entries would leave a gap."""
        if not entries:
            return
        offset = self._ents[0].index
        first = entries[0].index
        if first + len(entries) - 1 <= offset:
            return
        if first <= offset:
            entries = entries[offset + 1 - first :]
            first = offset + 1
        pos = first - offset
        if pos > len(self._ents):
            raise Unavailable(f"append at {first} leaves a gap after {self.last_index()}")
        if pos == len(self._ents):
            self._ents.extend(entries)
        else:
            self._ents[pos:] = entries

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log with ``snap``. Raises ``SnapshotOutOfDate`` if it is not
        newer than the snapshot held."""
        if snap.meta.index <= self._snapshot.meta.index and self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot {snap.meta.index} is out of date")
        self._snapshot = snap
        self._ents = [Entry(snap.meta.term, snap.meta.index)]

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Record a snapshot of the state machine as of ``index`` (already applied).
        Raises ``SnapshotOutOfDate`` or ``Unavailable``."""
        if index <= self._snapshot.meta.index:
            raise SnapshotOutOfDate(f"snapshot {index} is out of date")
        if index > self.last_index():
            raise Unavailable(f"snapshot index {index} beyond last index {self.last_index()}")
        snap = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
        self._snapshot = snap
        return snap

    def compact(self, index: int) -> None:
        """Discard the entries up to and including ``index``, which must not exceed the
        snapshot's index (the leader needs a snapshot covering what it discards).
        Raises ``Compacted`` if already compacted and ``Unavailable`` past the snapshot."""
        offset = self._ents[0].index
        if index <= offset:
            raise Compacted(f"index {index} is already compacted")
        if index > self._snapshot.meta.index:
            raise Unavailable(f"compaction to {index} passes snapshot {self._snapshot.meta.index}")
        pos = index - offset
        self._ents = [Entry(self._ents[pos].term, index), *self._ents[pos + 1 :]]
