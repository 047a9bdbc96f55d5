"""RawNode in isolation: the Ready/advance cycle and input between ready() and advance()."""

from __future__ import annotations

import random

import pytest

from pgraft.core import (
    AppendEntries,
    ConfChange,
    ConfChangeType,
    Config,
    ConfigError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    InstallSnapshot,
    MemoryStorage,
    RawNode,
    Role,
    Snapshot,
    SnapshotMeta,
    TimeoutNow,
)

C = 7
VOTERS = ConfState(frozenset({1, 2, 3}))


def follower() -> tuple[RawNode, MemoryStorage]:
    storage = MemoryStorage.bootstrap(VOTERS)
    node = RawNode(Config(2, C), storage, random.Random(2))
    return node, storage


def handle(node: RawNode, storage: MemoryStorage) -> None:
    rd = node.ready()
    if rd.snapshot is not None:
        storage.apply_snapshot(rd.snapshot)
    storage.append(rd.entries)
    if rd.hard_state is not None:
        storage.set_hard_state(rd.hard_state)
    node.advance(rd)


def test_ready_carries_entries_hard_state_and_commits_once() -> None:
    node, storage = follower()
    ents = (Entry(1, 1), Entry(1, 2, data=b"x"))
    node.step(AppendEntries(C, 1, 2, 1, 0, 0, ents, 2))
    rd = node.ready()
    assert rd.entries == ents
    assert rd.hard_state == HardState(1, 0, 2)
    assert rd.committed_entries == ents
    assert rd.must_sync
    assert [type(m).__name__ for m in rd.messages] == ["AppendResponse"]
    storage.append(rd.entries)
    node.advance(rd)
    assert not node.has_ready()
    assert node.status().applied == 2


def test_campaign_request_after_unapplied_snapshot_is_ignored() -> None:
    node, _ = follower()
    snap = Snapshot(SnapshotMeta(50, 3, VOTERS), b"img")
    node.step(InstallSnapshot(C, 1, 2, 3, snap))
    node.step(TimeoutNow(C, 1, 2, 3))  # must neither crash nor campaign yet
    assert node.status().role == Role.FOLLOWER


def test_stale_conf_change_does_not_override_newer_snapshot() -> None:
    node, storage = follower()
    cc = ConfChange(ConfChangeType.REMOVE_NODE, 3).encode()
    ents = (Entry(1, 1), Entry(1, 2, EntryType.CONF_CHANGE, cc))
    node.step(AppendEntries(C, 1, 2, 1, 0, 0, ents, 2))
    rd = node.ready()
    storage.append(rd.entries)
    four = ConfState(frozenset({1, 2, 3, 4}))
    node.step(InstallSnapshot(C, 1, 2, 1, Snapshot(SnapshotMeta(100, 1, four))))
    node.advance(rd)
    assert node.status().conf_state == four
    handle(node, storage)
    assert node.status().applied == 100
    assert storage.snapshot().meta.index == 100


def test_restart_with_applied_resumes_after_it() -> None:
    node, storage = follower()
    ents = tuple(Entry(1, i, data=b"%d" % i) for i in range(1, 6))
    node.step(AppendEntries(C, 1, 2, 1, 0, 0, ents, 5))
    handle(node, storage)
    again = RawNode(Config(2, C, applied=3), storage, random.Random(3))
    st = again.status()
    assert (st.term, st.commit, st.applied) == (1, 5, 3)
    rd = again.ready()
    assert [e.index for e in rd.committed_entries] == [4, 5]
    assert rd.hard_state is None and rd.entries == ()


def test_stale_term_acks_are_not_sent_after_the_log_was_overwritten() -> None:
    node, _ = follower()
    node.step(AppendEntries(C, 1, 2, 2, 0, 0, (Entry(2, 1), Entry(2, 2)), 0))
    node.step(AppendEntries(C, 3, 2, 3, 0, 0, (Entry(3, 1, data=b"X"),), 0))
    rd = node.ready()
    assert rd.entries == (Entry(3, 1, data=b"X"),)
    acks = [(m.to, m.term, m.index) for m in rd.messages]  # type: ignore[union-attr]
    assert acks == [(3, 3, 1)]


def test_stale_leader_is_told_the_term_even_without_prevote_and_check_quorum() -> None:
    storage = MemoryStorage.bootstrap(VOTERS)
    node = RawNode(Config(2, C, pre_vote=False, check_quorum=False), storage, random.Random(1))
    node.step(AppendEntries(C, 3, 2, 5, 0, 0, (), 0))
    node.step(AppendEntries(C, 1, 2, 4, 0, 0, (), 0))
    msgs = [m for m in node.ready().messages if m.to == 1]
    assert [(type(m).__name__, m.term) for m in msgs] == [("AppendResponse", 5)]


def test_set_timing_keeps_leadership() -> None:
    storage = MemoryStorage.bootstrap(ConfState(frozenset({1})))
    node = RawNode(Config(1, C), storage, random.Random(1))
    node.campaign()
    assert node.status().role == Role.LEADER
    node.set_timing(heartbeat_tick=2, election_tick=20)
    assert node.raft.cfg.election_tick == 20
    assert node.status().role == Role.LEADER
    with pytest.raises(ConfigError):
        node.set_timing(heartbeat_tick=5, election_tick=5)
    assert node.raft.cfg.heartbeat_tick == 2
