"""``DurableStorage``: the core's ``Storage`` protocol over one fsynced SQLite file.

Theory of operation
-------------------
The runtime hands each ``Ready`` to ``save_ready``, which writes the snapshot (if
any), the entries (truncating a conflicting suffix), the hard state and, through the
``applied_updates`` hook, the state machine's effects of the committed entries, all
in ONE write transaction. Its COMMIT fsyncs (WAL, ``synchronous=FULL``) before
``save_ready`` returns, so anything the runtime acknowledges afterwards is on disk.
Every Ready is synced, a commit-only one included: it carries applied state whose
results the runtime reports to clients, and one sync per Ready is already one per
batch (group commit). Reads live in ``LogView`` (``view.py``).

Invariants enforced on write (``invariants.py``; a violation is a bug upstream and
raises ``StorageFailure``, which stops the node): the log stays contiguous; no
committed entry is ever truncated; the term never decreases and the vote never
changes within a term; the commit index never decreases and never passes the last
index; a snapshot is only installed above the applied index.

Opening checks the write-ahead log before SQLite recovers it (``walcheck``): SQLite
would silently drop everything after a damaged frame, or open without a lost WAL, and
a node that forgets its term, vote or acknowledged entries breaks Raft. A clean
``close`` checkpoints the WAL into the database first.

Not thread-safe: use one thread at a time (the runtime uses only its event loop's thread).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from pgraft.core.types import ConfState, Entry, HardState, Snapshot
from pgraft.storage import invariants, schema, walcheck
from pgraft.storage.errors import CorruptionError, IdentityMismatch, StorageFailure
from pgraft.storage.lockfile import DirLock
from pgraft.storage.schema import DiskState, Meta
from pgraft.storage.view import LogView, StateImage


class DurableStorage(LogView):
    """The durable log, hard state and snapshot point of one node. Use ``open``."""

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        node_id: int,
        cluster_name: str,
        verify_tail: int = 4096,
    ) -> DurableStorage:
        """Open (creating if absent) the storage in ``data_dir``. At least the last
        ``verify_tail`` entries (and always the 4096 whose terms are cached) are
        checked against their CRCs; older ones are checked when read.

        Raises ``StorageLocked`` if another process has it open, ``IdentityMismatch``
        if it belongs to another node id or cluster name, ``CorruptionError`` (naming
        the file) if any integrity check fails, ``StorageFailure`` on I/O errors.
        """
        directory = Path(data_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = DirLock(directory / "LOCK")
        path = directory / schema.DB_NAME
        conn: sqlite3.Connection | None = None
        marker = walcheck.OpenMarker(path)
        try:
            marker.check()
            walcheck.check_wal(path)
            if not path.exists():
                if Path(f"{path}-wal").exists():
                    raise CorruptionError(path, "missing, but its write-ahead log exists")
                schema.create(path, Meta(node_id, cluster_name, 0))
            if path.stat().st_size == 0:
                raise CorruptionError(path, "database file is empty (truncated)")
            conn = schema.connect(path)
            meta = schema.read_meta(conn, path)
            if (meta.node_id, meta.cluster_name) != (node_id, cluster_name):
                raise IdentityMismatch(
                    f"{path}: belongs to node {meta.node_id} of cluster"
                    f" {meta.cluster_name!r}, not node {node_id} of cluster {cluster_name!r}"
                )
            storage = cls(path, conn, lock, meta)
            storage._load(verify_tail)
            marker.set()
            return storage
        except BaseException as exc:
            if conn is not None:
                conn.close()
            lock.release()
            if isinstance(exc, sqlite3.Error):
                raise schema.wrap_error(path, exc) from exc
            raise

    def close(self) -> None:
        """Checkpoint the WAL into the database (fsynced), then close: a clean close
        leaves nothing that depends on the WAL (``walcheck.OpenMarker``)."""
        try:
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                walcheck.OpenMarker(self.path).clear()
        except sqlite3.Error:
            pass  # not clean: the marker stays and the WAL is recovered at the next open
        finally:
            self._conn.close()
            self._lock.release()

    def __enter__(self) -> DurableStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_cluster_id(self, cluster_id: int) -> None:
        with self.transaction():
            schema.write_meta(self._conn, replace(self._meta, cluster_id=cluster_id))
        self._meta = replace(self._meta, cluster_id=cluster_id)

    def attach(self, sm: StateImage) -> None:
        """Attach the state machine whose tables live in this database."""
        self._sm = sm
        self._image = None

    # ------------------------------------------------------------------ writes

    @contextmanager
    def transaction(self, *, sync: bool = True) -> Iterator[None]:
        """One write transaction, durable (fsynced) when the block exits normally; with
        ``sync=False`` it commits without an fsync (see ``save_ready``).

        On any exception it rolls back, reloads the in-memory view and re-raises
        (SQLite errors as ``CorruptionError`` or ``StorageFailure``)."""
        if self._conn.in_transaction:
            raise StorageFailure(f"{self.path}: nested write transaction")
        before = self._state
        try:
            if not sync:
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("BEGIN IMMEDIATE")
            yield
            if self._state != before:
                schema.write_state(self._conn, self._state)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort()
            raise schema.wrap_error(self.path, exc) from exc
        except BaseException:
            self._abort()
            raise
        finally:
            if not sync:
                self._conn.execute("PRAGMA synchronous=FULL")
        if self._state.applied != before.applied:
            self._image = None

    def _abort(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._load()

    def set_applied(self, index: int, conf: ConfState) -> None:
        """Record the applied index and the configuration after it; only inside
        ``transaction`` (the state machine calls it with its own updates)."""
        if not self._conn.in_transaction:
            raise StorageFailure(f"{self.path}: set_applied outside a transaction")
        if index < self._state.applied or index > self._state.hard.commit:
            raise StorageFailure(
                f"{self.path}: applied index {index} outside"
                f" [{self._state.applied}, {self._state.hard.commit}]"
            )
        self._state = replace(self._state, applied=index, conf=conf)

    def save_ready(
        self,
        entries: Sequence[Entry],
        hard_state: HardState | None,
        snapshot: Snapshot | None,
        *,
        applied_updates: Callable[[], None] | None = None,
        sync: bool = True,
    ) -> None:
        """Persist one Ready in one fsynced transaction: ``snapshot``, then ``entries``
        (truncating the stored log from the first entry's index), then
        ``hard_state``, then ``applied_updates()`` (the state machine applying the
        Ready's committed entries; it may read the entries just written).

        ``sync=False`` is a permission, not an order: the fsync is skipped only when
        the Ready has no entries and no snapshot and leaves term and vote unchanged,
        i.e. it only advances the commit index and applies entries. That is safe: the
        commit index may be relearnt from the leader (Raft never needs it durable),
        the applied state is a deterministic function of entries that are already
        durable and is re-applied idempotently after a crash, and WAL mode loses at
        most a suffix of unsynced transactions, atomically, and makes them durable
        with the next synced commit. The price is that after a power loss this node
        may briefly report a lower commit/applied index than it did before.

        Raises ``StorageFailure`` on an invariant violation or I/O error,
        ``CorruptionError`` if SQLite finds damage. Nothing is written then."""
        hard = self._state.hard
        sync = sync or bool(entries) or snapshot is not None
        sync = sync or (hard_state is not None and hard_state.term != hard.term)
        sync = sync or (hard_state is not None and hard_state.vote != hard.vote)
        with self.transaction(sync=sync):
            if snapshot is not None:
                self._install(snapshot)
            if entries:
                self._append(entries)
            if hard_state is not None:
                self._set_hard_state(hard_state)
            if applied_updates is not None:
                applied_updates()

    def _install(self, snap: Snapshot) -> None:
        meta = snap.meta
        invariants.check_snapshot(self.path, meta.index, self._state.applied)
        self._conn.execute("DELETE FROM raft_log")
        if self._sm is not None:
            self._sm.restore(snap.data)
        hard = self._state.hard
        self._state = DiskState(
            replace(hard, commit=max(hard.commit, meta.index)),
            meta.index,
            meta.term,
            meta.index,
            meta.conf_state,
        )
        self._last = meta.index
        self._terms.reset(meta.index + 1)
        self._recent.reset(meta.index + 1)
        self._image = None

    def _append(self, entries: Sequence[Entry]) -> None:
        invariants.check_run(self.path, entries)
        skip = self._state.snap_index + 1 - entries[0].index
        if skip > 0:  # already compacted: covered by the snapshot
            entries = entries[skip:]
        if not entries:
            return
        first = entries[0].index
        prev_term = self.term(first - 1) if first <= self._last + 1 else 0
        invariants.check_append(
            self.path, entries, prev_term, self._last, self._state.hard.commit, self.term
        )
        if first <= self._last:
            self._conn.execute("DELETE FROM raft_log WHERE idx >= ?", (first,))
        self._conn.executemany(
            "INSERT INTO raft_log (idx, term, type, data, crc) VALUES (?, ?, ?, ?, ?)",
            [
                (
                    e.index,
                    e.term,
                    int(e.type),
                    e.data,
                    schema.entry_crc(e.index, e.term, e.type, e.data),
                )
                for e in entries
            ],
        )
        self._terms.append(first, (e.term for e in entries))
        self._recent.append(entries)
        self._last = entries[-1].index

    def _set_hard_state(self, hs: HardState) -> None:
        invariants.check_hard_state(self.path, self._state.hard, hs, self._last)
        self._state = replace(self._state, hard=hs)

    # ------------------------------------------------------------------ maintenance

    def bootstrap(
        self, conf_state: ConfState, *, cluster_id: int, entries: Sequence[Entry] = ()
    ) -> None:
        """Initialize a pristine storage: configuration ``conf_state`` at index 0 and
        ``entries`` (starting at index 1, e.g. a conf change that records the first
        member's address) appended and committed. Raises ``ValueError`` if the
        storage is not pristine or the entries do not start at 1."""
        if not self.is_pristine:
            raise ValueError(f"{self.path}: storage is already initialized")
        if entries and entries[0].index != 1:
            raise ValueError("bootstrap entries must start at index 1")
        with self.transaction():
            schema.write_meta(self._conn, replace(self._meta, cluster_id=cluster_id))
            self._state = replace(self._state, conf=conf_state)
            if entries:
                self._append(entries)
                last = entries[-1]
                self._state = replace(self._state, hard=HardState(last.term, 0, last.index))
        self._meta = replace(self._meta, cluster_id=cluster_id)

    def reset(self) -> None:
        """Forget everything but the node's identity: log, hard state, snapshot point,
        configuration, cluster id and (through the attached state machine) its state.
        Used when another cluster adopts this node."""
        with self.transaction():
            self._conn.execute("DELETE FROM raft_log")
            if self._sm is not None:
                self._sm.restore(b"")
            schema.write_meta(self._conn, replace(self._meta, cluster_id=0))
            self._state = DiskState()
            self._last = 0
            self._terms.reset(1)
            self._recent.reset(1)
        self._meta = replace(self._meta, cluster_id=0)
        self._image = None

    def compact(self, index: int) -> None:
        """Discard the entries up to ``index`` (which becomes the snapshot point, its
        term kept). A no-op at or below the current snapshot point. Raises
        ``ValueError`` past the applied index (those entries are still needed)."""
        if index <= self._state.snap_index:
            return
        if index > self._state.applied:
            raise ValueError(f"cannot compact to {index}: applied is {self._state.applied}")
        term = self.term(index)
        with self.transaction():
            self._conn.execute("DELETE FROM raft_log WHERE idx <= ?", (index,))
            self._state = replace(self._state, snap_index=index, snap_term=term)
        self._terms.compact(index)
        self._recent.compact(index)

    def maybe_compact(self, snapshot_threshold: int, log_retention: int) -> int | None:
        """Compact once ``snapshot_threshold`` entries were applied since the snapshot
        point, keeping the last ``log_retention`` applied entries for followers that
        lag a little (cheaper to catch up from the log than from an image). Returns
        the new snapshot index, or None when nothing was done."""
        st = self._state
        target = st.applied - log_retention
        if st.applied - st.snap_index < snapshot_threshold or target <= st.snap_index:
            return None
        self.compact(target)
        return target
