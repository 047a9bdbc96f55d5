"""The state machine's tables, stored in the node's storage database.

``sm_log``      user log records: (idx = the raft index, term, data, request_id, crc);
                the CRC over (idx, term, data) is checked whenever a record is read.
``sm_kv``       key -> value and the index of the entry that last changed it; a NULL
                value is a tombstone, kept so that "index of the last change" stays
                answerable after a delete; crc over (key, value, idx).
``sm_members``  node_id -> address, port, role ("voter" or "learner"); crc over all four.

Every row's CRC is checked whenever the row is read (and when a snapshot image is
built), so damage inside a payload, which SQLite's structural checks cannot see, is
refused (``CorruptionError``) instead of served or shipped to other nodes.

The applied index and the configuration live in the storage's own ``raft_state`` row
and are written in the same transaction as these tables.
"""

from __future__ import annotations

import sqlite3
import struct
import zlib
from typing import Final

DDL: Final = (
    """CREATE TABLE IF NOT EXISTS sm_log (
        idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, data BLOB NOT NULL,
        request_id BLOB NOT NULL, crc INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sm_kv (
        key TEXT PRIMARY KEY, value TEXT, idx INTEGER NOT NULL, crc INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sm_members (
        node_id INTEGER PRIMARY KEY, address TEXT NOT NULL, port INTEGER NOT NULL,
        role TEXT NOT NULL, crc INTEGER NOT NULL)""",
)

_HEAD: Final = struct.Struct(">QQ")


def log_crc(idx: int, term: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(_HEAD.pack(idx, term)))


def kv_crc(key: str, value: str | None, idx: int) -> int:
    k = key.encode()
    head = _HEAD.pack(idx, len(k)) + k
    return zlib.crc32(b"\0" if value is None else b"\1" + value.encode(), zlib.crc32(head))


def member_crc(node_id: int, address: str, port: int, role: str) -> int:
    a = address.encode()
    return zlib.crc32(role.encode(), zlib.crc32(_HEAD.pack(node_id, port) + a + b"\0"))


def exist(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN"
        " ('sm_log', 'sm_kv', 'sm_members')"
    ).fetchone()
    return bool(row[0] == len(DDL))


def current(conn: sqlite3.Connection) -> bool:
    """True when the tables exist with their row CRCs (``create`` brings them there)."""
    if not exist(conn):
        return False
    return all(
        "crc" in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        for table in ("sm_kv", "sm_members")
    )


def create(conn: sqlite3.Connection) -> None:
    """Create the tables if absent, and give the rows of tables written before rows had
    CRCs their CRC (inside the caller's transaction)."""
    for ddl in DDL:
        conn.execute(ddl)
    for table, crc in (("sm_kv", kv_crc), ("sm_members", member_crc)):
        if "crc" in {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}:
            continue
        conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER NOT NULL DEFAULT 0")
        rows = conn.execute(f"SELECT rowid, * FROM {table}").fetchall()
        conn.executemany(
            f"UPDATE {table} SET crc = ? WHERE rowid = ?",
            [(crc(*row[1:-1]), row[0]) for row in rows],
        )
