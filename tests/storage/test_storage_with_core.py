"""DurableStorage and StateMachine under the real Raft core: three in-process nodes
exchanging messages directly, each persisting every Ready in one transaction.

A follower cut off while the leader compacts its log must catch up through a lazily
built snapshot and then serve the same user log, keys and membership; everything
survives closing and reopening every node."""

from __future__ import annotations

import random
from pathlib import Path

from pgraft.core import Config, ConfState, Message, RawNode
from pgraft.statemachine import StateMachine, commands
from pgraft.storage import DurableStorage

CLUSTER_ID = 9
PEERS = frozenset({1, 2, 3})


class Node:
    def __init__(self, path: Path, nid: int) -> None:
        self.st = DurableStorage.open(path, node_id=nid, cluster_name="it")
        self.sm = StateMachine(self.st)
        if self.st.is_pristine:
            self.st.bootstrap(ConfState(PEERS), cluster_id=CLUSTER_ID)
        config = Config(node_id=nid, cluster_id=CLUSTER_ID, applied=self.st.applied)
        self.raw = RawNode(config, self.st, random.Random(nid))
        self.snapshots_installed = 0

    def handle(self) -> list[Message]:
        out: list[Message] = []
        for _ in range(100):
            if not self.raw.has_ready():
                break
            rd = self.raw.ready()
            batch = self.sm.batch(rd.committed_entries)
            self.st.save_ready(rd.entries, rd.hard_state, rd.snapshot, applied_updates=batch)
            self.snapshots_installed += rd.snapshot is not None
            out.extend(rd.messages)
            self.raw.advance(rd)
        return out


def stabilize(nodes: dict[int, Node], down: frozenset[int] = frozenset()) -> None:
    for _ in range(1000):
        msgs = [m for nid, n in nodes.items() if nid not in down for m in n.handle()]
        if not msgs:
            return
        for m in msgs:
            if m.to not in down:
                nodes[m.to].raw.step(m)
    raise AssertionError("cluster did not settle")


def start(tmp_path: Path) -> dict[int, Node]:
    return {nid: Node(tmp_path / f"n{nid}", nid) for nid in sorted(PEERS)}


def test_lagging_follower_catches_up_from_a_lazy_snapshot(tmp_path: Path) -> None:
    nodes = start(tmp_path)
    nodes[1].raw.campaign()
    stabilize(nodes)
    leader = nodes[1]
    assert leader.raw.status().leader == 1

    for i in range(30):
        leader.raw.propose(commands.encode(commands.LogAppend(i.to_bytes(16, "big"), b"a%d" % i)))
    stabilize(nodes)
    for i in range(30, 200):  # node 3 is cut off meanwhile
        rid = i.to_bytes(16, "big")
        leader.raw.propose(commands.encode(commands.Put(rid, f"k{i % 7}", f"v{i}")))
        leader.raw.propose(commands.encode(commands.LogAppend(rid, b"b%d" % i)))
        stabilize(nodes, down=frozenset({3}))
    assert leader.st.maybe_compact(snapshot_threshold=100, log_retention=20) is not None
    assert leader.st.first_index() > nodes[3].st.last_index() + 1

    for _ in range(5):  # heartbeats find node 3 back; it needs a snapshot now
        leader.raw.tick()
        stabilize(nodes)
    assert nodes[3].snapshots_installed == 1
    everything = leader.sm.log_read(0, 1 << 40, 1 << 20)
    assert len(everything) == 200
    for n in nodes.values():
        assert n.sm.last_applied == leader.sm.last_applied
        assert n.sm.log_read(0, 1 << 40, 1 << 20) == everything
        assert [n.sm.kv_get(f"k{j}") for j in range(7)] == [
            leader.sm.kv_get(f"k{j}") for j in range(7)
        ]
        assert n.st.conf_state == ConfState(PEERS)

    applied = leader.sm.last_applied
    for n in nodes.values():
        n.st.close()
    nodes = start(tmp_path)
    for n in nodes.values():
        assert n.sm.last_applied == applied
        assert n.sm.log_read(0, 1 << 40, 1 << 20) == everything
    nodes[2].raw.campaign()
    stabilize(nodes)
    nodes[2].raw.propose(commands.encode(commands.Put(bytes(16), "after", "restart")))
    stabilize(nodes)
    assert all(n.sm.kv_get("after")[0] == "restart" for n in nodes.values())
    for n in nodes.values():
        n.st.close()
