"""``LogView``: the read side of ``DurableStorage`` (the core's ``Storage`` protocol).

Theory of operation
-------------------
Reads are served from memory where they are hot: the hard state, the snapshot point,
the applied index, ``last_index`` and the terms of the most recent entries live in
memory; ``DurableStorage`` updates them as it writes and reloads them from disk
(``_load``) if a transaction rolls back. ``entries(lo, hi)`` serves the entries this
process wrote recently from memory (``EntryCache``: what the runtime applies and sends
right after writing it); anything else is one range query on the rowid, and every row
read is checked against its CRC, so damage that appeared on disk after open is never
served.

Snapshots are lazy. Because the state machine lives in the same database, compaction
only moves the snapshot point (index, term) and deletes rows; no image is written.
When the core needs a snapshot for a lagging follower, ``snapshot()`` asks the
attached state machine for an image of its current state, i.e. as of the applied
index, and labels it (applied, term(applied), configuration as of applied). The last
image is cached until the applied index moves.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final, Protocol

from pgraft.core.storage import limit_size
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
from pgraft.storage import schema
from pgraft.storage.entrycache import EntryCache
from pgraft.storage.errors import CorruptionError
from pgraft.storage.lockfile import DirLock
from pgraft.storage.schema import DiskState, Meta
from pgraft.storage.termcache import TermCache

TERM_CACHE: Final = 4096
"""How many of the most recent entry terms are kept in memory."""
RECENT_ENTRIES: Final = 16384
RECENT_BYTES: Final = 8 << 20
"""Bounds of the cache of entries written by this process (``EntryCache``)."""


class StateImage(Protocol):
    """What the state machine attached to a storage (``attach``) provides."""

    def snapshot_image(self) -> bytes:
        """An image of the current state (as of ``DurableStorage.applied``)."""
        ...

    def restore(self, image: bytes) -> None:
        """Replace the state with ``image`` (``b""``: empty). Called inside the
        storage's write transaction, so it commits or rolls back with it."""
        ...


class LogView:
    """The in-memory view of a storage database and the reads it serves."""

    def __init__(self, path: Path, conn: sqlite3.Connection, lock: DirLock, meta: Meta) -> None:
        self.path = path
        self._conn = conn
        self._lock = lock
        self._meta = meta
        self._state = DiskState()
        self._last = 0
        self._terms = TermCache(1, (), TERM_CACHE)  # terms up to self._last
        self._recent = EntryCache(RECENT_ENTRIES, RECENT_BYTES)  # entries written since load
        self._sm: StateImage | None = None
        self._image: Snapshot | None = None

    def _load(self, verify_tail: int | None = None) -> None:
        """(Re)read the in-memory view from disk, verifying the rows whose terms enter
        the cache. At open (``verify_tail`` given) also run the structural checks and
        verify at least the last ``verify_tail`` entries. Raises ``CorruptionError``."""
        st = schema.read_state(self._conn, self.path)
        if verify_tail is not None:
            last = schema.check_integrity(self._conn, self.path, st)
        else:
            row = self._conn.execute("SELECT MAX(idx) FROM raft_log").fetchone()
            last = st.snap_index if row[0] is None else int(row[0])
        span = max(TERM_CACHE, verify_tail or 0)
        base = max(st.snap_index + 1, last - span + 1)
        terms = schema.tail_terms(self._conn, self.path, base, last)
        keep = min(len(terms), TERM_CACHE)
        self._terms = TermCache(last - keep + 1, terms[len(terms) - keep :], TERM_CACHE)
        self._recent.reset(last + 1)
        self._state = st
        self._last = last
        self._image = None

    # ------------------------------------------------------------------ identity

    @property
    def node_id(self) -> int:
        return self._meta.node_id

    @property
    def cluster_name(self) -> str:
        return self._meta.cluster_name

    @property
    def cluster_id(self) -> int:
        """0 until the node is initialized or adopted."""
        return self._meta.cluster_id

    # ------------------------------------------------------------------ Storage protocol

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The hard state and the configuration as of the applied index (a suffix of
        the changes the core replays up to ``Config.applied`` is already in it)."""
        return self._state.hard, self._state.conf

    def first_index(self) -> int:
        return self._state.snap_index + 1

    def last_index(self) -> int:
        return self._last

    def term(self, index: int) -> int:
        """Raises ``Compacted`` below the snapshot index, ``Unavailable`` past the end,
        ``CorruptionError`` if the stored row fails its CRC."""
        cached = self.cached_term(index)
        if cached is not None:
            return cached
        st = self._state
        if index < st.snap_index:
            raise Compacted(f"index {index} is compacted (first index {st.snap_index + 1})")
        if index > self._last:
            raise Unavailable(f"index {index} beyond last index {self._last}")
        return self._read(index, index + 1, None)[0].term

    def cached_term(self, index: int) -> int | None:
        """``term(index)`` if memory knows it (the snapshot point or a cached term),
        else None. Never touches SQLite, so it may run while another thread writes."""
        st = self._state
        if index == st.snap_index:
            return st.snap_term
        if index < st.snap_index or index > self._last:
            return None
        return self._terms.get(index)

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``: at least one if the range is not empty, then as many
        as fit in ``max_bytes`` of data. Raises ``Compacted``, ``Unavailable``,
        ``CorruptionError``."""
        if lo <= self._state.snap_index:
            raise Compacted(f"index {lo} is compacted (first index {self.first_index()})")
        if hi > self._last + 1:
            raise Unavailable(f"index {hi - 1} beyond last index {self._last}")
        if lo >= hi:
            return []
        recent = self._recent.get(lo, hi)
        if recent is not None:
            return list(limit_size(recent, max_bytes))
        return self._read(lo, hi, max_bytes)

    def _read(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        """One range query; stops early (without reading further rows) once
        ``max_bytes`` is exceeded. Raises ``CorruptionError`` on a bad or missing row."""
        out: list[Entry] = []
        size = 0
        try:
            rows = self._conn.execute(
                "SELECT idx, term, type, data, crc FROM raft_log"
                " WHERE idx >= ? AND idx < ? ORDER BY idx",
                (lo, hi),
            )
            for idx, term, etype, data, crc in rows:
                schema.verify_row(self.path, idx, term, etype, data, crc)
                if idx != lo + len(out):
                    break
                size += len(data)
                if max_bytes is not None and out and size > max_bytes:
                    return out
                out.append(Entry(term, idx, EntryType(etype), data))
        except sqlite3.Error as exc:
            raise schema.wrap_error(self.path, exc) from exc
        if len(out) != hi - lo:
            raise CorruptionError(self.path, f"log entry {lo + len(out)} is missing")
        return out

    def snapshot(self) -> Snapshot:
        """A snapshot as of the applied index, built from the attached state machine
        on first demand and cached until the applied index moves."""
        st = self._state
        cached = self._image
        if cached is not None and cached.meta.index == st.applied:
            return cached
        data = b"" if self._sm is None else self._sm.snapshot_image()
        self._image = Snapshot(SnapshotMeta(st.applied, self.term(st.applied), st.conf), data)
        return self._image

    # ------------------------------------------------------------------ other reads

    @property
    def hard_state(self) -> HardState:
        return self._state.hard

    @property
    def applied(self) -> int:
        return self._state.applied

    @property
    def conf_state(self) -> ConfState:
        """The configuration as of the applied index."""
        return self._state.conf

    @property
    def is_pristine(self) -> bool:
        """True when nothing was ever written (no log, no state, no configuration)."""
        return self._last == 0 and self._state == DiskState()

    @property
    def connection(self) -> sqlite3.Connection:
        """The shared connection, for the attached state machine's own tables."""
        return self._conn
