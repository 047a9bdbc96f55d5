"""The WAL checks of ``walcheck``: a damaged frame followed by later transactions and a
WAL lost after an unclean shutdown are refused; intact crash leftovers, a torn last
transaction and a clean close are not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pgraft.core.types import ConfState, Entry, EntryType, HardState
from pgraft.storage import CorruptionError, DurableStorage

WAL_HEADER = 32
FRAME_HEADER = 24


def _filled(directory: Path, entries: int) -> DurableStorage:
    st = DurableStorage.open(directory, node_id=1, cluster_name="c")
    st.bootstrap(ConfState(voters=frozenset({1})), cluster_id=42)
    for i in range(1, entries + 1):
        e = Entry(1, i, EntryType.NORMAL, b"x" * 100)
        st.save_ready([e], HardState(1, 1, i), None)
    return st


def _crash_copy(tmp_path: Path, entries: int) -> Path:
    """The files an open storage leaves behind when its process dies."""
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    st = _filled(live, entries)
    try:
        crashed.mkdir()
        for name in ("raft.db", "raft.db-wal", "raft.db-open"):
            shutil.copyfile(live / name, crashed / name)
    finally:
        st.close()
    return crashed


def _frames(wal: Path) -> tuple[bytearray, int, int]:
    raw = bytearray(wal.read_bytes())
    page = int.from_bytes(raw[8:12], "big")
    return raw, page, (len(raw) - WAL_HEADER) // (FRAME_HEADER + page)


def test_intact_crash_leftovers_open(tmp_path: Path) -> None:
    crashed = _crash_copy(tmp_path, 20)
    with DurableStorage.open(crashed, node_id=1, cluster_name="c") as st:
        assert st.last_index() == 20
        assert st.hard_state == HardState(1, 1, 20)


def test_torn_last_transaction_is_accepted(tmp_path: Path) -> None:
    crashed = _crash_copy(tmp_path, 20)
    wal = crashed / "raft.db-wal"
    raw, page, frames = _frames(wal)
    raw[WAL_HEADER + (frames - 1) * (FRAME_HEADER + page) + FRAME_HEADER + 7] ^= 0xFF
    wal.write_bytes(bytes(raw))
    with DurableStorage.open(crashed, node_id=1, cluster_name="c") as st:
        assert st.last_index() == 19  # the last transaction was never complete


def test_damaged_middle_frame_is_refused(tmp_path: Path) -> None:
    crashed = _crash_copy(tmp_path, 20)
    wal = crashed / "raft.db-wal"
    raw, page, frames = _frames(wal)
    raw[WAL_HEADER + (frames // 2) * (FRAME_HEADER + page) + FRAME_HEADER + 7] ^= 0xFF
    wal.write_bytes(bytes(raw))
    with pytest.raises(CorruptionError, match=r"raft\.db-wal.*damaged"):
        DurableStorage.open(crashed, node_id=1, cluster_name="c").close()


def test_missing_wal_after_crash_is_refused(tmp_path: Path) -> None:
    crashed = _crash_copy(tmp_path, 5)
    (crashed / "raft.db-wal").unlink()
    with pytest.raises(CorruptionError, match=r"raft\.db-wal is missing"):
        DurableStorage.open(crashed, node_id=1, cluster_name="c").close()


def test_clean_close_needs_no_wal(tmp_path: Path) -> None:
    _filled(tmp_path, 5).close()
    assert not (tmp_path / "raft.db-open").exists()
    (tmp_path / "raft.db-wal").unlink(missing_ok=True)
    with DurableStorage.open(tmp_path, node_id=1, cluster_name="c") as st:
        assert st.last_index() == 5
        assert (tmp_path / "raft.db-open").exists()
        assert (tmp_path / "raft.db-wal").exists()
