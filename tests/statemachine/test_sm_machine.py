"""StateMachine: apply results, idempotence across restarts, membership, snapshots."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest

from pgraft.core.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Snapshot,
)
from pgraft.statemachine import (
    ImageError,
    LogRecord,
    Member,
    StateMachine,
    StateMachineError,
    image,
)
from pgraft.statemachine import commands as c
from pgraft.storage import DurableStorage


def rid(n: int) -> bytes:
    return n.to_bytes(16, "big")


class Node:
    """A storage + state machine under ``path``, with a helper that commits entries."""

    def __init__(self, path: Path) -> None:
        self.st = DurableStorage.open(path, node_id=1, cluster_name="c1")
        self.sm = StateMachine(self.st)

    def commit(self, *payloads: bytes | Entry, term: int = 1) -> dict[bytes, object]:
        first = self.st.last_index() + 1
        entries = [
            p if isinstance(p, Entry) else Entry(term, first + i, EntryType.NORMAL, p)
            for i, p in enumerate(payloads)
        ]
        batch = self.sm.batch(entries)
        hs = HardState(term, 0, entries[-1].index)
        self.st.save_ready(entries, hs, None, applied_updates=batch)
        return {k: (v.reply if v.error is None else v.error) for k, v in batch.results.items()}

    def close(self) -> None:
        self.st.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "n1")
    yield n
    n.close()


def conf_change(index: int, kind: ConfChangeType, nid: int, ctx: object = None) -> Entry:
    context = b"" if ctx is None else msgpack.packb(ctx)
    return Entry(1, index, EntryType.CONF_CHANGE, ConfChange(kind, nid, context).encode())


def test_results_by_request_id(node: Node) -> None:
    results = node.commit(
        c.encode(c.LogAppend(rid(1), b"hello")),
        b"",  # leader no-op
        c.encode(c.Put(rid(2), "k", "v1")),
        c.encode(c.CompareAndSet(rid(3), "k", "wrong", "v2")),
        c.encode(c.CompareAndSet(rid(4), "k", "v1", "v2")),
        c.encode(c.CompareAndSet(rid(5), "new", None, "x")),
        c.encode(c.Delete(rid(6), "k")),
        c.encode(c.Delete(rid(7), "k")),
    )
    assert results == {
        rid(1): 1,
        rid(2): 3,
        rid(3): {"ok": False, "value": "v1", "index": 4},
        rid(4): {"ok": True, "value": "v2", "index": 5},
        rid(5): {"ok": True, "value": "x", "index": 6},
        rid(6): {"deleted": True, "index": 7},
        rid(7): {"deleted": False, "index": 8},
    }
    assert node.sm.kv_get("k") == (None, 7)
    assert node.sm.kv_get("new") == ("x", 6)
    assert node.sm.kv_get("never") == (None, 0)
    assert node.sm.log_read(1, 100, 10) == [LogRecord(1, 1, b"hello")]
    assert node.sm.last_applied == 8


def test_fenced_log_append_is_not_appended_unless_the_term_matches(node: Node) -> None:
    assert not node.sm.has_user_data()
    results = node.commit(
        c.encode(c.LogAppend(rid(1), b"wrong term", 1)),
        c.encode(c.LogAppend(rid(2), b"right term", 2)),
        term=2,
    )
    assert node.sm.log_read(0, 10, 10) == [LogRecord(2, 2, b"right term")]
    assert results == {rid(1): "term mismatch: the entry's term is 2, not 1", rid(2): 2}
    assert node.sm.has_user_data()


def test_commit_only_ready_may_skip_the_fsync(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.st.save_ready([Entry(1, 1, EntryType.NORMAL, c.encode(c.Put(rid(1), "k", "v")))], None, None)
    batch = n.sm.batch(n.st.entries(1, 2))
    n.st.save_ready((), HardState(1, 0, 1), None, applied_updates=batch, sync=False)
    assert n.st.connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    n.close()
    n = Node(tmp_path)
    assert (n.st.hard_state.commit, n.sm.last_applied, n.sm.kv_get("k")) == (1, 1, ("v", 1))
    n.close()


def test_malformed_entry_is_a_noop_with_a_recorded_error(node: Node) -> None:
    bad = msgpack.packb(["put", rid(9), "k"], use_bin_type=True)
    results = node.commit(bad, b"\xc1garbage", c.encode(c.Put(rid(10), "k", "v")))
    assert "takes 4 fields" in str(results[rid(9)])
    assert results[rid(10)] == 3
    assert node.sm.last_applied == 3
    assert node.sm.kv_get("k") == ("v", 3)


def test_apply_is_idempotent_across_restarts(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.commit(*(c.encode(c.LogAppend(rid(i), b"d%d" % i)) for i in range(1, 6)))
    entries = n.st.entries(1, 6)
    n.close()
    n = Node(tmp_path)
    assert n.sm.last_applied == 5
    assert n.sm.apply(entries) == {}  # all at or below last_applied: skipped
    assert len(n.sm.log_read(1, 5, 100)) == 5
    with pytest.raises(StateMachineError, match="gap"):
        n.sm.apply([Entry(1, 9, EntryType.NORMAL, b"")])
    assert n.sm.last_applied == 5
    n.close()


def test_membership_and_configuration(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.st.bootstrap(
        ConfState(frozenset({1})),
        cluster_id=5,
        entries=[conf_change(1, ConfChangeType.ADD_NODE, 1, {"address": "10.0.0.1", "port": 7001})],
    )
    n.sm.apply(n.st.entries(1, 2))
    n.commit(
        conf_change(2, ConfChangeType.ADD_LEARNER, 2, {"address": "10.0.0.2", "port": 7002}),
        conf_change(3, ConfChangeType.ADD_LEARNER, 3, {"address": "10.0.0.3", "port": 7003}),
        conf_change(4, ConfChangeType.ADD_NODE, 2),  # promotion keeps the address
        conf_change(5, ConfChangeType.REMOVE_NODE, 3),
        conf_change(6, ConfChangeType.ADD_LEARNER, 4, "not a dict"),
        Entry(1, 7, EntryType.CONF_CHANGE, b"\x01"),  # undecodable: no-op
    )
    expected = {
        1: Member(1, "10.0.0.1", 7001, "voter"),
        2: Member(2, "10.0.0.2", 7002, "voter"),
        4: Member(4, "", 0, "learner"),
    }
    assert n.sm.members() == expected
    conf = ConfState(frozenset({1, 2}), frozenset({4}))
    assert n.st.conf_state == conf
    n.close()
    n = Node(tmp_path)
    assert n.st.initial_state()[1] == conf
    assert n.sm.members() == expected
    n.close()


def _populate(n: Node, count: int) -> None:
    n.commit(conf_change(1, ConfChangeType.ADD_NODE, 1, {"address": "h1", "port": 1}))
    n.commit(*(c.encode(c.LogAppend(rid(i), b"rec%d" % i)) for i in range(count)), term=2)
    n.commit(c.encode(c.Put(rid(1), "a", "1")), c.encode(c.Delete(rid(2), "a")), term=2)
    n.commit(c.encode(c.Put(rid(3), "b", "2")), term=3)


def test_snapshot_restores_a_follower_in_one_transaction(tmp_path: Path) -> None:
    leader = Node(tmp_path / "leader")
    _populate(leader, image.CHUNK_ROWS * 2 + 5)  # several chunks
    leader.st.compact(leader.st.applied - 3)
    snap = leader.st.snapshot()
    assert leader.st.snapshot() is snap  # cached while applied does not move
    assert (snap.meta.index, snap.meta.term) == (leader.st.applied, 3)

    follower = Node(tmp_path / "follower")
    follower.commit(c.encode(c.Put(rid(99), "stale", "x")))  # replaced by the snapshot
    follower.st.save_ready((), HardState(3, 0, snap.meta.index), snap)
    follower.close()
    follower = Node(tmp_path / "follower")
    assert follower.sm.last_applied == snap.meta.index
    assert follower.st.first_index() == snap.meta.index + 1
    assert follower.sm.kv_get("stale") == (None, 0)
    assert follower.sm.kv_get("a") == leader.sm.kv_get("a") == (None, 2 + image.CHUNK_ROWS * 2 + 6)
    assert follower.sm.kv_get("b") == leader.sm.kv_get("b")
    assert follower.sm.members() == leader.sm.members()
    assert follower.st.conf_state == leader.st.conf_state == ConfState(frozenset({1}))
    every = leader.sm.log_read(0, 1 << 40, 1 << 20)
    assert len(every) == image.CHUNK_ROWS * 2 + 5
    assert follower.sm.log_read(0, 1 << 40, 1 << 20) == every
    assert follower.sm.log_read(5, 7, 2) == every[3:5]
    assert follower.st.snapshot().data == snap.data  # same state, same image
    leader.close()
    follower.close()


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-3],  # cut off inside the trailer
        lambda b: b[: len(b) // 2],  # cut off between chunks or inside one
        lambda b: b[:20] + bytes([b[20] ^ 0x10]) + b[21:],  # a flipped bit
        lambda b: b + b"\x90",  # trailing garbage
        lambda b: zlib.compress(msgpack.packb(["pgraft-xx-image", 1])),
        lambda b: zlib.compress(msgpack.packb(["pgraft-sm-image", 1])),  # no trailer
        lambda b: zlib.compress(
            msgpack.packb(["pgraft-sm-image", 1]) + msgpack.packb(["kv", [[1, 2, 3]]])
        ),
        lambda b: zlib.compress(
            msgpack.packb(["pgraft-sm-image", 1]) + msgpack.packb(["end", {"kv": 5}])
        ),
    ],
)
def test_malformed_image_is_rejected_and_nothing_changes(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    leader = Node(tmp_path / "leader")
    _populate(leader, 10)
    snap = leader.st.snapshot()
    follower = Node(tmp_path / "follower")
    follower.commit(c.encode(c.Put(rid(99), "keep", "me")))
    bad = Snapshot(snap.meta, damage(snap.data))
    with pytest.raises(ImageError):
        follower.st.save_ready((), None, bad)
    assert follower.sm.kv_get("keep") == ("me", 1)
    assert follower.sm.last_applied == 1 and follower.st.last_index() == 1
    leader.close()
    follower.close()


def test_reset_wipes_the_state_machine_too(node: Node) -> None:
    node.commit(c.encode(c.Put(rid(1), "k", "v")), c.encode(c.LogAppend(rid(2), b"x")))
    node.st.reset()
    assert node.st.is_pristine
    assert node.sm.kv_get("k") == (None, 0)
    assert node.sm.log_read(0, 10, 10) == []
    snap = node.st.snapshot()
    assert (snap.meta.index, snap.data) == (0, node.sm.snapshot_image())
