"""The SQLite file behind ``DurableStorage``: schema, pragmas, checksums and open checks.

Theory of operation
-------------------
One database file, ``<data_dir>/raft.db``, per node. Tables:

``pgraft_meta``   one row: schema version, node id, cluster name, cluster id (+ CRC).
``raft_state``    one row: hard state (term, vote, commit), the snapshot point
                  (snap_index, snap_term), the applied index and the configuration as of
                  the applied index (+ CRC). The configuration is what
                  ``initial_state`` returns and what a lazily built snapshot carries.
``raft_log``      one row per entry: ``idx INTEGER PRIMARY KEY`` (the rowid, so a range
                  read is one B-tree walk), term, type, data, and a CRC32 over
                  (index, term, type, data).

The state machine (``pgraft.statemachine``) adds its own tables to the same file so
that applying entries and advancing the applied index commit in one transaction.

Durability: WAL journal with ``synchronous=FULL``, so every COMMIT fsyncs the WAL
before returning; SQLite also fsyncs the directory when it creates the WAL file. A
new database is built under a temporary name and renamed into place (then the
directory is fsynced), so the presence of ``raft.db`` means its schema is complete:
an empty or schema-less ``raft.db`` is damage, never a half-finished creation.

Corruption: SQLite's ``quick_check`` finds structural damage (truncation, broken
pages); per-row CRCs find damage inside payloads, which no B-tree check can see. Both
run at open (CRCs over the log's tail region plus every singleton row) and the CRC of
every entry is checked again whenever it is read.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgpack

from pgraft.core.types import ConfState, EntryType, HardState, StorageError
from pgraft.storage.errors import CorruptionError, StorageFailure

SCHEMA_VERSION: Final = 1
DB_NAME: Final = "raft.db"

_DDL: Final = (
    """CREATE TABLE pgraft_meta (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        schema_version INTEGER NOT NULL, node_id INTEGER NOT NULL,
        cluster_name TEXT NOT NULL, cluster_id INTEGER NOT NULL, crc INTEGER NOT NULL)""",
    """CREATE TABLE raft_state (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        term INTEGER NOT NULL, vote INTEGER NOT NULL, commit_idx INTEGER NOT NULL,
        snap_index INTEGER NOT NULL, snap_term INTEGER NOT NULL, applied INTEGER NOT NULL,
        conf BLOB NOT NULL, crc INTEGER NOT NULL)""",
    """CREATE TABLE raft_log (
        idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL,
        data BLOB NOT NULL, crc INTEGER NOT NULL)""",
)

_ENTRY_HEAD: Final = struct.Struct(">QQB")
_STATE_HEAD: Final = struct.Struct(">6Q")
_CORRUPT_CODES: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def entry_crc(index: int, term: int, etype: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(_ENTRY_HEAD.pack(index, term, etype)))


def wrap_error(path: Path, exc: sqlite3.Error) -> StorageError:
    """``CorruptionError`` when SQLite reports a damaged file, else ``StorageFailure``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in _CORRUPT_CODES:
        return CorruptionError(path, str(exc))
    return StorageFailure(f"{path}: {exc}")


@dataclass(frozen=True, slots=True)
class DiskState:
    """The ``raft_state`` row. Invariants: snap_index <= applied <= max(commit,
    snap_index); the configuration is the one in force after ``applied``."""

    hard: HardState = field(default_factory=HardState)
    snap_index: int = 0
    snap_term: int = 0
    applied: int = 0
    conf: ConfState = field(default_factory=ConfState)

    def conf_blob(self) -> bytes:
        blob: bytes = msgpack.packb([sorted(self.conf.voters), sorted(self.conf.learners)])
        return blob

    def crc(self) -> int:
        head = _STATE_HEAD.pack(
            self.hard.term,
            self.hard.vote,
            self.hard.commit,
            self.snap_index,
            self.snap_term,
            self.applied,
        )
        return zlib.crc32(self.conf_blob(), zlib.crc32(head))


def write_state(conn: sqlite3.Connection, st: DiskState) -> None:
    conn.execute(
        "UPDATE raft_state SET term=?, vote=?, commit_idx=?, snap_index=?, snap_term=?,"
        " applied=?, conf=?, crc=? WHERE id=0",
        (
            st.hard.term,
            st.hard.vote,
            st.hard.commit,
            st.snap_index,
            st.snap_term,
            st.applied,
            st.conf_blob(),
            st.crc(),
        ),
    )


def read_state(conn: sqlite3.Connection, path: Path) -> DiskState:
    """Raises ``CorruptionError`` when the row is missing or fails its CRC."""
    row = conn.execute(
        "SELECT term, vote, commit_idx, snap_index, snap_term, applied, conf, crc"
        " FROM raft_state WHERE id=0"
    ).fetchone()
    if row is None:
        raise CorruptionError(path, "raft_state row is missing")
    term, vote, commit, snap_index, snap_term, applied, conf, crc = row
    try:
        voters, learners = msgpack.unpackb(conf)
        cs = ConfState(frozenset(int(v) for v in voters), frozenset(int(x) for x in learners))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorruptionError(path, f"raft_state configuration unreadable ({exc})") from None
    st = DiskState(HardState(term, vote, commit), snap_index, snap_term, applied, cs)
    if st.crc() != crc:
        raise CorruptionError(path, "raft_state row fails its checksum")
    return st


def _meta_crc(node_id: int, cluster_name: str, cluster_id: int) -> int:
    return zlib.crc32(f"{SCHEMA_VERSION}\0{node_id}\0{cluster_name}\0{cluster_id}".encode())


@dataclass(frozen=True, slots=True)
class Meta:
    node_id: int
    cluster_name: str
    cluster_id: int


def write_meta(conn: sqlite3.Connection, meta: Meta) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO pgraft_meta VALUES (0, ?, ?, ?, ?, ?)",
        (
            SCHEMA_VERSION,
            meta.node_id,
            meta.cluster_name,
            meta.cluster_id,
            _meta_crc(meta.node_id, meta.cluster_name, meta.cluster_id),
        ),
    )


def read_meta(conn: sqlite3.Connection, path: Path) -> Meta:
    row = conn.execute(
        "SELECT schema_version, node_id, cluster_name, cluster_id, crc FROM pgraft_meta"
    ).fetchone()
    if row is None:
        raise CorruptionError(path, "pgraft_meta row is missing")
    version, node_id, cluster_name, cluster_id, crc = row
    if version != SCHEMA_VERSION:
        raise CorruptionError(path, f"unsupported schema version {version}")
    if _meta_crc(node_id, cluster_name, cluster_id) != crc:
        raise CorruptionError(path, "pgraft_meta row fails its checksum")
    return Meta(node_id, cluster_name, cluster_id)


def connect(path: Path) -> sqlite3.Connection:
    """Opens the file in autocommit mode (transactions are explicit) with the pragmas
    that make a COMMIT durable."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"cannot enable WAL journal mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA cell_size_check=ON")
    return conn


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create(path: Path, meta: Meta) -> None:
    """Builds a complete, empty database at ``path`` atomically (temp file + rename)."""
    tmp = path.with_name(path.name + ".new")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    conn = connect(tmp)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for ddl in _DDL:
            conn.execute(ddl)
        write_meta(conn, meta)
        conn.execute(
            "INSERT INTO raft_state VALUES (0, 0, 0, 0, 0, 0, 0, ?, ?)",
            (DiskState().conf_blob(), DiskState().crc()),
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    os.rename(tmp, path)
    _fsync_dir(path.parent)


def check_integrity(conn: sqlite3.Connection, path: Path, st: DiskState) -> int:
    """Runs the open-time structural checks and returns the last log index:
    ``PRAGMA quick_check``, and the log is one contiguous run starting right after the
    snapshot point and reaching the applied index. Raises ``CorruptionError``."""
    problems = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise CorruptionError(path, "quick_check: " + "; ".join(str(p) for p in problems))
    lo, hi, count = conn.execute("SELECT MIN(idx), MAX(idx), COUNT(*) FROM raft_log").fetchone()
    if count == 0:
        if st.applied > st.snap_index:
            raise CorruptionError(path, f"log is empty but applied index is {st.applied}")
        return st.snap_index
    if lo != st.snap_index + 1 or hi - lo + 1 != count:
        raise CorruptionError(
            path,
            f"log is not contiguous after snapshot {st.snap_index}:"
            f" {count} entries span {lo}..{hi}",
        )
    if hi < st.applied:
        raise CorruptionError(path, f"log ends at {hi}, before the applied index {st.applied}")
    return int(hi)


def tail_terms(conn: sqlite3.Connection, path: Path, first: int, last: int) -> list[int]:
    """The terms of entries ``first..last``, each row verified (CRC, type, contiguity,
    non-decreasing terms). Raises ``CorruptionError``."""
    terms: list[int] = []
    rows = conn.execute(
        "SELECT idx, term, type, data, crc FROM raft_log WHERE idx >= ? AND idx <= ? ORDER BY idx",
        (first, last),
    )
    for idx, term, etype, data, crc in rows:
        verify_row(path, idx, term, etype, data, crc)
        if idx != first + len(terms):
            break
        if terms and term < terms[-1]:
            raise CorruptionError(path, f"entry {idx} has term {term} below its predecessor's")
        terms.append(int(term))
    if len(terms) != last - first + 1:
        raise CorruptionError(path, f"log entry {first + len(terms)} is missing")
    return terms


def verify_row(path: Path, idx: int, term: int, etype: int, data: bytes, crc: int) -> None:
    """Raises ``CorruptionError`` unless the row's CRC and type are valid."""
    if entry_crc(idx, term, etype, data) != crc:
        raise CorruptionError(path, f"log entry {idx} fails its checksum")
    if etype not in (EntryType.NORMAL, EntryType.CONF_CHANGE):
        raise CorruptionError(path, f"log entry {idx} has unknown type {etype}")
