"""DurableStorage: round trips, restart, invariants, lock, identity, compaction."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from storage_helpers import ents, open_store

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
from pgraft.storage import (
    DurableStorage,
    IdentityMismatch,
    StorageFailure,
    StorageLocked,
)
from pgraft.storage.view import TERM_CACHE


def test_empty_store(store: DurableStorage) -> None:
    assert store.is_pristine
    assert store.initial_state() == (HardState(), ConfState())
    assert (store.first_index(), store.last_index(), store.term(0)) == (1, 0, 0)
    assert store.entries(1, 1) == []
    with pytest.raises(Unavailable):
        store.term(1)
    with pytest.raises(Unavailable):
        store.entries(1, 2)


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    written = [*ents(1, 5, 1), Entry(2, 6, EntryType.CONF_CHANGE, b"\x00cc")]
    with open_store(tmp_path) as st:
        st.save_ready(written, HardState(2, 3, 4), None)
        assert st.entries(1, 7) == written
    with open_store(tmp_path) as st:
        assert st.initial_state() == (HardState(2, 3, 4), ConfState())
        assert (st.first_index(), st.last_index()) == (1, 6)
        assert st.entries(1, 7) == written
        assert [st.term(i) for i in range(0, 7)] == [0, 1, 1, 1, 1, 1, 2]


def test_append_truncates_from_its_first_entry(store: DurableStorage) -> None:
    store.save_ready(ents(1, 6, 1), HardState(1, 0, 2), None)
    store.save_ready([*ents(3, 4, 1), *ents(5, 5, 2)], None, None)  # 3,4 identical
    assert store.last_index() == 5
    assert store.entries(1, 6) == [*ents(1, 4, 1), *ents(5, 5, 2)]
    store.save_ready(ents(2, 3, 1), None, None)  # identical, committed: rewritten as is
    assert store.entries(1, 4) == ents(1, 3, 1)
    assert store.last_index() == 3


def test_max_bytes_returns_at_least_one_entry(store: DurableStorage) -> None:
    store.save_ready(ents(1, 10, 1), None, None)
    size = len(ents(1, 1, 1)[0].data)
    assert len(store.entries(1, 11, max_bytes=0)) == 1
    assert len(store.entries(1, 11, max_bytes=3 * size)) == 3
    assert len(store.entries(1, 11, max_bytes=1 << 20)) == 10


def test_term_cache_and_database_agree(tmp_path: Path) -> None:
    n = 2 * TERM_CACHE + 100
    entries = [Entry(1 + i // 1000, i, data=b"x") for i in range(1, n + 1)]
    with open_store(tmp_path) as st:
        st.save_ready(entries, None, None)
        assert [st.term(i) for i in range(1, n + 1)] == [e.term for e in entries]
    with open_store(tmp_path) as st:
        assert [st.term(i) for i in range(1, n + 1)] == [e.term for e in entries]


@pytest.mark.parametrize(
    ("entries", "hs", "match"),
    [
        (ents(3, 4, 2), None, "truncate committed"),  # commit is 4
        (ents(3, 3, 1), None, "truncate committed"),  # identical, but drops entry 4
        (ents(8, 9, 2), None, "gap"),
        (ents(7, 7, 1), None, "lower term"),
        ([*ents(7, 7, 3), *ents(9, 9, 3)], None, "not a log run"),
        ((), HardState(1, 1, 4), "term would go back"),
        ((), HardState(2, 2, 4), "vote in term 2"),
        ((), HardState(2, 1, 3), "commit 3 outside"),
        ((), HardState(2, 1, 7), "commit 7 outside"),
    ],
)
def test_write_invariants_refuse_and_write_nothing(
    store: DurableStorage, entries: list[Entry], hs: HardState | None, match: str
) -> None:
    store.save_ready([*ents(1, 4, 1), *ents(5, 6, 2)], HardState(2, 1, 4), None)
    with pytest.raises(StorageFailure, match=match):
        store.save_ready(entries, hs, None)
    assert store.hard_state == HardState(2, 1, 4)
    assert store.entries(1, 7) == [*ents(1, 4, 1), *ents(5, 6, 2)]


def test_failed_hook_rolls_back_the_whole_ready(tmp_path: Path) -> None:
    def boom() -> None:
        raise RuntimeError("apply failed")

    with open_store(tmp_path) as st:
        st.save_ready(ents(1, 2, 1), HardState(1, 0, 1), None)
        with pytest.raises(RuntimeError):
            st.save_ready(ents(3, 5, 1), HardState(1, 0, 4), None, applied_updates=boom)
        assert (st.last_index(), st.hard_state) == (2, HardState(1, 0, 1))
    with open_store(tmp_path) as st:
        assert (st.last_index(), st.hard_state) == (2, HardState(1, 0, 1))


def test_lock_refuses_a_second_open_in_process_and_from_another_process(tmp_path: Path) -> None:
    with open_store(tmp_path):
        with pytest.raises(StorageLocked, match="in use by another process"):
            open_store(tmp_path)
        code = (
            "import sys; from pgraft.storage import DurableStorage, StorageLocked\n"
            "try: DurableStorage.open(sys.argv[1], node_id=1, cluster_name='c1')\n"
            "except StorageLocked as e: print(e); sys.exit(3)\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
        )
        assert proc.returncode == 3, proc.stderr
        assert "in use" in proc.stdout
    open_store(tmp_path).close()  # released on close


def test_identity_mismatch(tmp_path: Path) -> None:
    open_store(tmp_path).close()
    with pytest.raises(IdentityMismatch, match="node 1 of cluster 'c1'"):
        DurableStorage.open(tmp_path, node_id=2, cluster_name="c1")
    with pytest.raises(IdentityMismatch):
        DurableStorage.open(tmp_path, node_id=1, cluster_name="other")
    open_store(tmp_path).close()  # a refused open releases the lock


def test_bootstrap_cluster_id_and_reset(tmp_path: Path) -> None:
    conf = ConfState(frozenset({1}))
    boot = [Entry(1, 1, EntryType.CONF_CHANGE, b"cc")]
    with open_store(tmp_path) as st:
        st.bootstrap(conf, cluster_id=77, entries=boot)
        with pytest.raises(ValueError, match="already initialized"):
            st.bootstrap(conf, cluster_id=78)
    with open_store(tmp_path) as st:
        assert st.cluster_id == 77
        assert st.initial_state() == (HardState(1, 0, 1), conf)
        assert st.entries(1, 2) == boot
        st.set_cluster_id(99)
    with open_store(tmp_path) as st:
        assert st.cluster_id == 99
        st.reset()
        assert st.is_pristine and st.cluster_id == 0
    with open_store(tmp_path) as st:
        assert st.is_pristine and st.cluster_id == 0


def _applied_to(st: DurableStorage, index: int) -> None:
    with st.transaction():
        st.set_applied(index, st.conf_state)


def test_compaction_keeps_the_term_and_survives_restart(tmp_path: Path) -> None:
    with open_store(tmp_path) as st:
        st.save_ready([*ents(1, 10, 1), *ents(11, 20, 2)], HardState(2, 0, 15), None)
        with pytest.raises(ValueError, match="applied"):
            st.compact(5)
        _applied_to(st, 15)
        st.compact(12)
        st.compact(3)  # below the snapshot point: no-op
    with open_store(tmp_path) as st:
        assert (st.first_index(), st.last_index(), st.term(12)) == (13, 20, 2)
        with pytest.raises(Compacted):
            st.term(11)
        with pytest.raises(Compacted):
            st.entries(12, 14)
        assert st.entries(13, 21) == ents(13, 20, 2)
        snap = st.snapshot()  # lazy: as of applied, no state machine attached
        assert (snap.meta.index, snap.meta.term, snap.data) == (15, 2, b"")


def test_maybe_compact_policy(store: DurableStorage) -> None:
    store.save_ready(ents(1, 100, 1), HardState(1, 0, 100), None)
    _applied_to(store, 50)
    assert store.maybe_compact(snapshot_threshold=60, log_retention=10) is None
    _applied_to(store, 100)
    assert store.maybe_compact(snapshot_threshold=60, log_retention=10) == 90
    assert store.first_index() == 91
    assert store.maybe_compact(snapshot_threshold=5, log_retention=10) is None


def test_install_snapshot_replaces_the_log(tmp_path: Path) -> None:
    conf = ConfState(frozenset({1, 2}), frozenset({3}))
    with open_store(tmp_path) as st:
        st.save_ready(ents(1, 5, 1), HardState(1, 0, 2), None)
        snap = Snapshot(SnapshotMeta(40, 3, conf), b"")
        st.save_ready(ents(41, 42, 3), HardState(3, 0, 41), snap)
        with pytest.raises(StorageFailure, match="not above applied"):
            st.save_ready((), None, Snapshot(SnapshotMeta(30, 3, conf)))
    with open_store(tmp_path) as st:
        assert st.initial_state() == (HardState(3, 0, 41), conf)
        assert (st.first_index(), st.last_index(), st.applied, st.term(40)) == (41, 42, 40, 3)
        assert st.entries(41, 43) == ents(41, 42, 3)
