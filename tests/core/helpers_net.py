"""A tiny in-process network of RawNodes over MemoryStorage, for end-to-end tests.

Each ``stabilize`` round handles every node's Ready exactly as a runtime must (persist,
then send, then apply, then advance) and delivers the sent messages, until nothing is
left to do. Links can be cut, nodes stopped and restarted over their storage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pgraft.core import (
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    RawNode,
    ReadState,
    Role,
)

CLUSTER = 7


@dataclass
class Member:
    node: RawNode
    storage: MemoryStorage
    applied: list[Entry] = field(default_factory=list)
    reads: list[ReadState] = field(default_factory=list)
    snapshots: int = 0


class Net:
    def __init__(self, ids: list[int], seed: int = 1, **cfg: object) -> None:
        self.rng = random.Random(seed)
        self.cfg = cfg
        self.members: dict[int, Member] = {}
        self.queue: list[Message] = []
        self.cut: set[tuple[int, int]] = set()
        self.down: set[int] = set()
        self.delivered = 0
        for i in ids:
            self.add(i, MemoryStorage.bootstrap(ConfState(frozenset(ids))))

    def add(self, nid: int, storage: MemoryStorage, applied: int = 0) -> Member:
        config = Config(nid, CLUSTER, applied=applied, **self.cfg)  # type: ignore[arg-type]
        node = RawNode(config, storage, random.Random(self.rng.random()))
        self.members[nid] = Member(node, storage)
        self.down.discard(nid)
        return self.members[nid]

    def node(self, nid: int) -> RawNode:
        return self.members[nid].node

    def leader(self) -> int:
        leads = [
            i
            for i, m in self.members.items()
            if i not in self.down and m.node.status().role == Role.LEADER
        ]
        assert len(leads) <= 1 or len({self.node(i).status().term for i in leads}) == len(leads)
        return max(leads, key=lambda i: self.node(i).status().term, default=0)

    def isolate(self, nid: int) -> None:
        for other in self.members:
            if other != nid:
                self.cut.add((nid, other))
                self.cut.add((other, nid))

    def heal(self) -> None:
        self.cut.clear()

    def handle_ready(self, nid: int) -> bool:
        mem = self.members[nid]
        node = mem.node
        if nid in self.down or not node.has_ready():
            return False
        rd = node.ready()
        if rd.snapshot is not None:
            mem.storage.apply_snapshot(rd.snapshot)
            mem.snapshots += 1
            mem.applied = [e for e in mem.applied if e.index <= 0]
        mem.storage.append(rd.entries)
        if rd.hard_state is not None:
            mem.storage.set_hard_state(rd.hard_state)
        self.queue.extend(rd.messages)
        mem.applied.extend(rd.committed_entries)
        mem.reads.extend(rd.read_states)
        node.advance(rd)
        return True

    def deliver(self) -> int:
        msgs, self.queue = self.queue, []
        n = 0
        for m in msgs:
            if m.to in self.down or m.frm in self.down or (m.frm, m.to) in self.cut:
                continue
            if m.to in self.members:
                self.members[m.to].node.step(m)
                n += 1
        self.delivered += n
        return n

    def stabilize(self, max_rounds: int = 10_000) -> None:
        for _ in range(max_rounds):
            busy = False
            for nid in self.members:
                busy |= self.handle_ready(nid)
            busy |= self.deliver() > 0
            if not busy:
                return
        raise AssertionError("network did not stabilize")

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for nid, mem in self.members.items():
                if nid not in self.down:
                    mem.node.tick()
            self.stabilize()

    def elect(self, nid: int) -> None:
        self.node(nid).campaign()
        self.stabilize()
        assert self.leader() == nid, f"{nid} did not win"

    def data(self, nid: int) -> list[bytes]:
        return [e.data for e in self.members[nid].applied if e.type == EntryType.NORMAL and e.data]
