"""The state machine's tables, stored in the node's storage database.

``sm_log``      user log records: (idx = the raft index, term, data, request_id, crc);
                the CRC over (idx, term, data) is checked whenever a record is read.
``sm_kv``       key -> value and the index of the entry that last changed it; a NULL
                value is a tombstone, kept so that "index of the last change" stays
                answerable after a delete.
``sm_members``  node_id -> address, port, role ("voter" or "learner").

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
        key TEXT PRIMARY KEY, value TEXT, idx INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS sm_members (
        node_id INTEGER PRIMARY KEY, address TEXT NOT NULL, port INTEGER NOT NULL,
        role TEXT NOT NULL)""",
)

_HEAD: Final = struct.Struct(">QQ")


def log_crc(idx: int, term: int, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(_HEAD.pack(idx, term)))


def exist(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN"
        " ('sm_log', 'sm_kv', 'sm_members')"
    ).fetchone()
    return bool(row[0] == len(DDL))


def create(conn: sqlite3.Connection) -> None:
    """Create the tables if absent (inside the caller's transaction)."""
    for ddl in DDL:
        conn.execute(ddl)
