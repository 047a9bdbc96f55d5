"""Corruption is detected: the storage refuses to open (or to serve) damaged data,
and the error names the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storage_helpers import ents, open_store

from pgraft.core.types import HardState
from pgraft.storage import CorruptionError
from pgraft.storage.view import TERM_CACHE


def _write(path: Path, n: int = 50) -> None:
    with open_store(path) as st:
        st.save_ready(ents(1, n, 1, tag="-payload-marker"), HardState(1, 1, n // 2), None)


def _sql(path: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(path / "raft.db", isolation_level=None)
    conn.execute(statement, args)
    conn.close()


def test_flipped_byte_in_entry_data_via_sql_is_refused_at_open(tmp_path: Path) -> None:
    _write(tmp_path)
    conn = sqlite3.connect(tmp_path / "raft.db", isolation_level=None)
    (data,) = conn.execute("SELECT data FROM raft_log WHERE idx = 40").fetchone()
    flipped = data[:3] + bytes([data[3] ^ 0x20]) + data[4:]  # one bit of one byte
    conn.execute("UPDATE raft_log SET data = ? WHERE idx = 40", (flipped,))
    conn.close()
    with pytest.raises(CorruptionError, match=r"raft\.db: .*entry 40 fails its checksum"):
        open_store(tmp_path)


def test_damage_outside_the_verified_tail_is_caught_on_read(tmp_path: Path) -> None:
    n = TERM_CACHE + 100
    _write(tmp_path, n)
    _sql(tmp_path, "UPDATE raft_log SET term = 9 WHERE idx = 3")
    with open_store(tmp_path, verify_tail=10) as st:  # open checks the cached tail only
        assert st.entries(20, n + 1)[0].index == 20
        with pytest.raises(CorruptionError, match="entry 3 fails its checksum"):
            st.entries(1, 10)
        with pytest.raises(CorruptionError, match="entry 3"):
            st.term(3)


def test_flipped_byte_in_the_raw_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    db = tmp_path / "raft.db"
    raw = bytearray(db.read_bytes())
    marker = b"entry-33-1-payload-marker"
    at = raw.find(marker)
    assert at > 0 and not (tmp_path / "raft.db-wal").exists()
    raw[at + 7] ^= 0x01  # "entry-3" -> "entry-2"
    db.write_bytes(bytes(raw))
    with pytest.raises(CorruptionError, match=r"raft\.db.*entry 33 fails its checksum"):
        open_store(tmp_path)


def test_tampered_hard_state_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    _sql(tmp_path, "UPDATE raft_state SET term = 0")
    with pytest.raises(CorruptionError, match="raft_state row fails its checksum"):
        open_store(tmp_path)


def test_missing_entry_in_the_middle_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    _sql(tmp_path, "DELETE FROM raft_log WHERE idx = 17")
    with pytest.raises(CorruptionError, match="not contiguous"):
        open_store(tmp_path)


@pytest.mark.parametrize("keep", [0, 4096, 0.5])
def test_truncated_file_is_refused(tmp_path: Path, keep: float) -> None:
    _write(tmp_path, n=400)
    db = tmp_path / "raft.db"
    size = db.stat().st_size
    with db.open("r+b") as f:
        f.truncate(int(size * keep) if isinstance(keep, float) else keep)
    with pytest.raises(CorruptionError, match=r"raft\.db"):
        open_store(tmp_path)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "raft.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptionError, match=r"raft\.db"):
        open_store(tmp_path)


@pytest.mark.parametrize("max_bytes", [None, 1 << 20])
def test_row_missing_after_open_is_reported_on_read(tmp_path: Path, max_bytes: int | None) -> None:
    _write(tmp_path)
    with open_store(tmp_path) as st:
        st.connection.execute("DELETE FROM raft_log WHERE idx = 50")
        with pytest.raises(CorruptionError, match="entry 50 is missing"):
            st.entries(40, 51, max_bytes)
