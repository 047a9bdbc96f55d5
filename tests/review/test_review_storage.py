"""Review findings on storage corruption detection (see .coord/node-bugs.md).

Each test builds a real on-disk state with ``DurableStorage`` + ``StateMachine``,
damages it the way a disk can (a flipped byte in a committed WAL frame, a changed
byte inside a state-machine row that SQLite's structural checks cannot see), and
asserts the node would refuse it rather than run with silently different state.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from pgraft.core.types import ConfState, Entry, EntryType, HardState
from pgraft.statemachine import StateMachine, commands
from pgraft.storage import CorruptionError, DurableStorage

WAL_HEADER = 32
FRAME_HEADER = 24


def _filled(directory: Path, entries: int) -> DurableStorage:
    """A storage bootstrapped as a one-member cluster with ``entries`` committed and
    applied ``kv`` puts (key ``k<i>``, value ``value-<i>``)."""
    st = DurableStorage.open(directory, node_id=1, cluster_name="c")
    sm = StateMachine(st)
    st.bootstrap(ConfState(voters=frozenset({1})), cluster_id=42)
    for i in range(1, entries + 1):
        data = commands.encode(commands.Put(commands.new_request_id(), f"k{i}", f"value-{i}"))
        e = Entry(1, i, EntryType.NORMAL, data)
        st.save_ready([e], HardState(1, 1, i), None, applied_updates=sm.batch([e]))
    return st


def test_damaged_wal_frame_is_refused_not_silently_rolled_back(tmp_path: Path) -> None:
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    st = _filled(live, 40)
    try:
        # The files as a crash (SIGKILL, power loss after the fsyncs) leaves them:
        # everything is in the WAL, nothing checkpointed yet.
        crashed.mkdir()
        for name in ("raft.db", "raft.db-wal"):
            shutil.copyfile(live / name, crashed / name)
    finally:
        st.close()
    wal = crashed / "raft.db-wal"
    page = int.from_bytes(wal.read_bytes()[8:12], "big")
    frames = (wal.stat().st_size - WAL_HEADER) // (FRAME_HEADER + page)
    assert frames > 10  # the state really lives in the WAL
    raw = bytearray(wal.read_bytes())
    raw[WAL_HEADER + 2 * (FRAME_HEADER + page) + FRAME_HEADER + 100] ^= 0xFF  # 3rd frame
    wal.write_bytes(bytes(raw))

    # Today SQLite treats the bad checksum as the end of the WAL and drops every later
    # (fsynced, acknowledged) transaction: the node opens as a pristine, uninitialized
    # node — term, vote and log gone — and would accept init or adoption.
    with pytest.raises(CorruptionError, match=r"raft\.db"):
        reopened = DurableStorage.open(crashed, node_id=1, cluster_name="c")
        reopened.close()


def test_damaged_kv_row_is_detected(tmp_path: Path) -> None:
    st = _filled(tmp_path, 3)
    st.close()
    # A changed byte inside a row's payload: the b-tree stays well formed, so neither
    # SQLite's integrity checks nor the raft log's CRCs notice.
    conn = sqlite3.connect(tmp_path / "raft.db")
    conn.execute("UPDATE sm_kv SET value = 'valuE-2' WHERE key = 'k2'")
    conn.commit()
    conn.close()

    with pytest.raises(CorruptionError):
        st = DurableStorage.open(tmp_path, node_id=1, cluster_name="c")
        try:
            sm = StateMachine(st)
            sm.kv_get("k2")  # today: ("valuE-2", 2), served as if it were true
        finally:
            st.close()
