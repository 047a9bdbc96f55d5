"""Row CRCs of the state machine's tables: damage inside a key-value, member or user
log row is refused when the row is read and when a snapshot image is built (never
shipped with a fresh CRC); tables written before rows had CRCs get them; ``log_read``
stops at its byte budget."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgpack
import pytest

from pgraft.core.types import ConfChange, ConfChangeType, Entry, EntryType, HardState
from pgraft.statemachine import LogRecord, Member, StateMachine
from pgraft.statemachine import commands as c
from pgraft.storage import CorruptionError, DurableStorage


def _fill(path: Path) -> None:
    st = DurableStorage.open(path, node_id=1, cluster_name="c")
    sm = StateMachine(st)
    ctx = msgpack.packb({"address": "h1", "port": 7001})
    entries = [
        Entry(1, 1, EntryType.CONF_CHANGE, ConfChange(ConfChangeType.ADD_NODE, 1, ctx).encode()),
        Entry(1, 2, EntryType.NORMAL, c.encode(c.Put(c.new_request_id(), "k", "v1"))),
        Entry(1, 3, EntryType.NORMAL, c.encode(c.LogAppend(c.new_request_id(), b"a" * 100))),
        Entry(1, 4, EntryType.NORMAL, c.encode(c.LogAppend(c.new_request_id(), b"b" * 100))),
        Entry(1, 5, EntryType.NORMAL, c.encode(c.LogAppend(c.new_request_id(), b"c" * 100))),
    ]
    st.save_ready(entries, HardState(1, 1, 5), None, applied_updates=sm.batch(entries))
    st.close()


def _damage(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path / "raft.db")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("UPDATE sm_kv SET idx = 3", lambda sm: sm.kv_get("k")),
        ("UPDATE sm_members SET port = 7002", lambda sm: sm.members()),
        ("UPDATE sm_log SET data = x'41' WHERE idx = 4", lambda sm: sm.log_read(1, 9, 10)),
    ],
)
def test_damaged_row_is_refused_on_read_and_in_images(
    tmp_path: Path, sql: str, read: object
) -> None:
    _fill(tmp_path)
    _damage(tmp_path, sql)
    with DurableStorage.open(tmp_path, node_id=1, cluster_name="c") as st:
        sm = StateMachine(st)
        with pytest.raises(CorruptionError, match="fails its CRC"):
            read(sm)  # type: ignore[operator]
        with pytest.raises(CorruptionError, match=r"raft\.db.*fails its CRC"):
            sm.snapshot_image()


def test_intact_rows_read_back_and_survive_an_image(tmp_path: Path) -> None:
    _fill(tmp_path)
    with DurableStorage.open(tmp_path, node_id=1, cluster_name="c") as st:
        sm = StateMachine(st)
        assert sm.kv_get("k") == ("v1", 2)
        assert sm.members() == {1: Member(1, "h1", 7001, "voter")}
        img = sm.snapshot_image()
        with st.transaction():
            sm.restore(img)
        assert sm.kv_get("k") == ("v1", 2)
        assert sm.members() == {1: Member(1, "h1", 7001, "voter")}


def test_rows_written_before_crcs_get_them(tmp_path: Path) -> None:
    _fill(tmp_path)
    conn = sqlite3.connect(tmp_path / "raft.db")
    for table in ("sm_kv", "sm_members"):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN crc")
    conn.commit()
    conn.close()
    with DurableStorage.open(tmp_path, node_id=1, cluster_name="c") as st:
        sm = StateMachine(st)
        assert sm.kv_get("k") == ("v1", 2)
        assert sm.members() == {1: Member(1, "h1", 7001, "voter")}


def test_log_read_stops_at_its_byte_budget(tmp_path: Path) -> None:
    _fill(tmp_path)
    with DurableStorage.open(tmp_path, node_id=1, cluster_name="c") as st:
        sm = StateMachine(st)
        assert [r.index for r in sm.log_read(1, 9, 10, max_bytes=250)] == [3, 4]
        assert sm.log_read(1, 9, 10, max_bytes=1) == [LogRecord(3, 1, b"a" * 100)]
        assert [r.index for r in sm.log_read(1, 9, 10)] == [3, 4, 5]
