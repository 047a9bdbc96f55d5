"""One node of the transcript world: a ``RawNode``, its storage and its state machine.

Theory of operation
-------------------
A ``Node`` plays the runtime's part of the Ready contract, synchronously:
``handle_ready`` persists a Ready into ``MemoryStorage`` (snapshot, entries, hard
state, in that order), applies its committed entries to a tiny state machine and calls
``advance``. The state machine is the list of ``(index, data)`` of applied non-empty
normal entries; a snapshot's data is that list's data joined by commas, so a snapshot
restores it. ``confs`` records the configuration in force after each applied
conf-change index, so a compaction can store the configuration as of its index.

A crash drops the ``RawNode`` (``raw = None``) and keeps the storage: exactly what was
persisted survives. ``restart`` rebuilds the ``RawNode`` from storage with the same
seed, ``random.Random(node_id)``, so every run of a transcript is identical.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field

from pgraft.core import Config, MemoryStorage, RawNode, Ready
from pgraft.core.types import ConfState, EntryType, Snapshot, SnapshotMeta


@dataclass
class Node:
    config: Config
    storage: MemoryStorage
    raw: RawNode | None = None  # None while crashed
    applied: list[tuple[int, bytes]] = field(default_factory=list)  # state machine
    confs: list[tuple[int, ConfState]] = field(default_factory=list)  # (index, conf)
    shown: tuple[object, ...] = ()  # last reported (role, term, leader, conf)

    @classmethod
    def boot(cls, config: Config, conf: ConfState, index: int) -> Node:
        """A new member: bootstrapped with ``conf`` (from a snapshot at ``index`` when
        it is > 0), or with empty storage when ``conf`` has no voters (a joiner)."""
        storage = MemoryStorage()
        if conf.voters and index:
            storage.apply_snapshot(Snapshot(SnapshotMeta(index, 1, conf)))
        elif conf.voters:
            storage = MemoryStorage.bootstrap(conf)
        node = cls(config, storage, confs=[(index, conf)])
        node.raw = RawNode(config, storage, random.Random(config.node_id))
        return node

    def restart(self, applied: int | None) -> RawNode:
        """Rebuild the ``RawNode`` from storage. The state machine comes back from the
        snapshot, or, given ``applied``, is taken as durable up to that index."""
        snap = self.storage.snapshot()
        if applied is None:
            applied = snap.meta.index
            self._restore(snap)
        else:
            self.applied = [(i, d) for i, d in self.applied if i <= applied]
            self.confs = [(i, cs) for i, cs in self.confs if i <= applied]
        self.config = dataclasses.replace(self.config, applied=applied)
        self.raw = RawNode(self.config, self.storage, random.Random(self.config.node_id))
        self.shown = ()
        return self.raw

    def compact(self, index: int) -> None:
        """Snapshot the state machine as of ``index`` and drop the log up to it."""
        conf = [cs for i, cs in self.confs if i <= index][-1]
        data = b",".join(d for i, d in self.applied if i <= index)
        self.storage.create_snapshot(index, conf, data)
        self.storage.compact(index)

    def handle_ready(self, raw: RawNode) -> Ready:
        """Persist, apply and advance one Ready; the caller sends its messages."""
        rd = raw.ready()
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
            self._restore(rd.snapshot)
        if rd.entries:
            self.storage.append(list(rd.entries))
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        for e in rd.committed_entries:
            if e.type == EntryType.NORMAL and e.data:
                self.applied.append((e.index, e.data))
        raw.advance(rd)
        for e in rd.committed_entries:
            if e.type == EntryType.CONF_CHANGE:
                self.confs.append((e.index, raw.status().conf))
        return rd

    def _restore(self, snap: Snapshot) -> None:
        meta = snap.meta
        self.applied = [(meta.index, d) for d in snap.data.split(b",") if d]
        self.confs = [(meta.index, meta.conf_state)]
