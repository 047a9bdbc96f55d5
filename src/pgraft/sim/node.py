"""One simulated server: a RawNode, its "disk" and its state machine.

Theory of operation
-------------------
The disk is a ``MemoryStorage`` that only the Ready handler below writes to, in the
order the ``Ready`` contract prescribes: (1) persist snapshot, entries and hard state,
(2) send the messages, (3) apply committed entries and answer read states, (4)
``advance``. A crash throws away the RawNode and the state machine and keeps the
storage, so a restarted node knows exactly what it had persisted. A crash may be
*armed* to strike inside the next Ready at one of these points: before persisting,
after persisting but before sending, after sending some of the messages, or after
applying but before ``advance`` — the places a real process can die.

A runtime may take new input while a Ready is in progress (the contract allows input
between ``ready()`` and ``advance()``). With probability ``Mix.split_ready`` the
handler stops after sending; the world then feeds the node more input before
``process`` finishes the Ready (apply, advance).

The state machine is a running CRC-32 over the applied entries (``digest``) plus the
applied index. Its snapshot image is that checksum, so a node restored from a
snapshot can be compared with nodes that applied the entries one by one.

Applying also checks that each entry is the next index, is committed and is the entry
stored at that index. Each step of every hook reports to the ``Checker``; a broken
property raises ``Violation`` out of ``process``.
"""

from __future__ import annotations

import random
import struct
import zlib

from pgraft.core.config import Config
from pgraft.core.rawnode import RawNode
from pgraft.core.storage import MemoryStorage
from pgraft.core.types import (
    Compacted,
    ConfState,
    Entry,
    EntryType,
    Ready,
    Role,
    Unavailable,
)

from .checker import Checker, Violation
from .mixes import Mix
from .network import Network
from .trace import Trace

CLUSTER_ID = 1
MAX_READY_ROUNDS = 8
_DIGEST = struct.Struct(">I")

# Where an armed crash strikes inside a Ready.
BEFORE_PERSIST, BEFORE_SEND, MID_SEND, BEFORE_ADVANCE = range(4)


def snapshot_image(digest: int) -> bytes:
    return _DIGEST.pack(digest)


def image_digest(data: bytes) -> int:
    return _DIGEST.unpack(data)[0] if data else 0


class SimNode:
    def __init__(
        self,
        node_id: int,
        storage: MemoryStorage,
        mix: Mix,
        rng: random.Random,
        services: tuple[Network, Checker, Trace],
    ) -> None:
        self.id = node_id
        self.storage = storage
        self._mix = mix
        self._rng = rng
        self._net, self._check, self._trace = services
        self.raw: RawNode | None = None
        self.hs = storage.hard_state
        self.role = Role.FOLLOWER
        self.leader = 0
        self.applied = 0
        self.digest = 0
        self.conf = ConfState()
        self.was_member = False
        self.retired = False
        self.crash_at: int | None = None
        self._split: tuple[Ready, int | None] | None = None
        self.incarnations = 0

    @property
    def up(self) -> bool:
        return self.raw is not None

    def is_member(self) -> bool:
        return self.id in self.conf.voters or self.id in self.conf.learners

    # ------------------------------------------------------------ life cycle

    def start(self) -> None:
        m = self._mix
        snap = self.storage.snapshot()
        self.applied = snap.meta.index
        self.digest = image_digest(snap.data)
        cfg = Config(
            node_id=self.id,
            cluster_id=CLUSTER_ID,
            election_tick=m.election_tick,
            heartbeat_tick=m.heartbeat_tick,
            max_msg_entries=m.max_msg_entries,
            max_inflight=m.max_inflight,
            pre_vote=m.pre_vote,
            check_quorum=m.check_quorum,
            applied=self.applied,
        )
        self.raw = RawNode(cfg, self.storage, random.Random(self._rng.getrandbits(64)))
        self.incarnations += 1
        st = self.raw.status()
        self._check.on_restart(self.id, self.hs, st.term, st.vote, st.commit)
        self.role, self.leader, self.conf = st.role, st.leader, st.conf_state
        self.was_member = self.was_member or self.is_member()
        self.crash_at = None
        self._trace.add(
            self.id, "start", f"term={st.term} commit={st.commit} conf={_conf(st.conf_state)}"
        )

    def crash(self, why: str) -> None:
        self.raw = None
        self.role = Role.FOLLOWER
        self.leader = 0
        self.crash_at = None
        self._split = None
        self._trace.add(self.id, "crash", why)

    # ------------------------------------------------------------ Ready handling

    @property
    def busy(self) -> bool:
        """True while a Ready was persisted and sent but not yet applied and advanced."""
        return self._split is not None

    def process(self) -> None:
        """Finish a split Ready, then handle Readies until the node has none (bounded),
        crashes, or splits one (the world calls again later)."""
        for _ in range(MAX_READY_ROUNDS):
            raw = self.raw
            if raw is None:
                return
            if self._split is not None:
                rd, stage = self._split
                self._split = None
                self._finish(raw, rd, stage)
                continue
            if not raw.has_ready():
                return
            self._handle(raw, raw.ready())
            if self._split is not None:
                return

    def _handle(self, raw: RawNode, rd: Ready) -> None:
        stage, self.crash_at = self.crash_at, None
        check = self._check
        if rd.soft_state is not None and rd.soft_state.role == Role.LEADER:
            check.on_leader(self.id, rd.hard_state.term if rd.hard_state else self.hs.term)
        if stage == BEFORE_PERSIST:
            return self.crash("inside a Ready, before persisting")
        old_commit = self.hs.commit
        self._persist(rd)
        if rd.soft_state is not None:
            self.role, self.leader = rd.soft_state.role, rd.soft_state.leader
            self._trace.add(
                self.id, "role", f"{self.role.name} term={self.hs.term} leader={self.leader}"
            )
            if self.role == Role.LEADER:
                check.check_completeness(self.id, self.hs.term, self.storage)
        if self.role == Role.LEADER and self.hs.commit > old_commit:
            check.on_leader_commit(self.id, self.hs, self.storage)
        if stage == BEFORE_SEND:
            return self.crash("inside a Ready, after persisting, before sending")
        msgs = rd.messages
        if stage == MID_SEND:
            msgs = msgs[: self._rng.randrange(len(msgs) + 1)]
        for msg in msgs:
            check.on_send(self.id, msg, self.hs, self.storage)
            self._net.send(msg)
        if stage == MID_SEND:
            return self.crash(f"inside a Ready, after sending {len(msgs)} of {len(rd.messages)}")
        if self._mix.split_ready and self._rng.random() < self._mix.split_ready:
            self._split = (rd, stage)
            self._trace.add(self.id, "split", "Ready sent; apply and advance come later")
            return None
        return self._finish(raw, rd, stage)

    def _finish(self, raw: RawNode, rd: Ready, stage: int | None) -> None:
        check = self._check
        conf_changed = self._apply(rd.committed_entries)
        for rs in rd.read_states:
            self._trace.add(self.id, "read-state", rs)
            check.on_read_state(self.id, rs.index, rs.context)
        if stage == BEFORE_ADVANCE:
            return self.crash("inside a Ready, after applying, before advance")
        raw.advance(rd)
        if conf_changed or rd.snapshot is not None:
            self._refresh_conf(raw)

    def _persist(self, rd: Ready) -> None:
        storage, check = self.storage, self._check
        snap = rd.snapshot
        if snap is not None:
            if snap.meta.index < self.applied:
                raise Violation(
                    "snapshot-rollback",
                    f"node {self.id} got snapshot {snap.meta.index} with {self.applied} applied",
                )
            storage.apply_snapshot(snap)
            self.applied, self.digest = snap.meta.index, image_digest(snap.data)
            check.on_digest(self.id, self.applied, self.digest)
            self._trace.add(self.id, "snapshot", snap.meta)
        if rd.entries:
            first = rd.entries[0].index
            try:
                prev: int | None = storage.term(first - 1)
            except (Compacted, Unavailable):  # the position cannot be checked
                prev = None
            self._trace.add(self.id, "append", _span(rd.entries))
            check.on_append(self.id, rd.entries, prev)
            storage.append(rd.entries)
        hs = rd.hard_state
        if hs is not None:
            old = self.hs
            self._trace.add(self.id, "hard-state", hs)
            check.on_hard_state(self.id, old, hs)
            storage.set_hard_state(hs)
            self.hs = hs
            if hs.commit > old.commit:
                check.on_commit(self.id, hs, old.commit, storage)

    def _apply(self, entries: tuple[Entry, ...]) -> bool:
        check = self._check
        conf_changed = False
        for e in entries:
            if e.index <= self.applied:
                continue  # already covered by a snapshot restored in this Ready
            if e.index != self.applied + 1:
                raise Violation(
                    "apply-gap", f"node {self.id} applied {self.applied}, next given {e.index}"
                )
            if e.index > self.hs.commit:
                raise Violation(
                    "apply-uncommitted",
                    f"node {self.id} applies {e.index} > commit {self.hs.commit}",
                )
            stored = self.storage.entries(e.index, e.index + 1)[0]
            if stored != e:
                raise Violation(
                    "apply-not-in-log", f"node {self.id} applies {e!r} but stored {stored!r}"
                )
            header = b"%d:%d:" % (e.term, e.type)
            self.digest = zlib.crc32(e.data, zlib.crc32(header, self.digest))
            self.applied = e.index
            check.on_apply(self.id, e, self.digest)
            if e.type == EntryType.CONF_CHANGE:
                conf_changed = True
        return conf_changed

    def _refresh_conf(self, raw: RawNode) -> None:
        self.conf = raw.status().conf_state
        self._trace.add(self.id, "conf", _conf(self.conf))
        if self.is_member():
            self.was_member = True
        elif self.was_member:
            self.retired = True
            self.crash("removed from the configuration; retired")

    # ------------------------------------------------------------ snapshots

    def compact(self) -> None:
        """Snapshot the state machine at ``applied`` and drop older log entries."""
        storage = self.storage
        if self.applied <= storage.snapshot().meta.index or self.raw is None:
            return
        storage.create_snapshot(
            self.applied, self.raw.status().conf_state, snapshot_image(self.digest)
        )
        keep_from = self.applied - self._rng.randint(0, self._mix.snapshot_keep)
        if keep_from >= storage.first_index():
            storage.compact(keep_from)
        self._trace.add(self.id, "compact", f"snapshot at {self.applied}, log from {keep_from + 1}")


def _span(entries: tuple[Entry, ...]) -> str:
    first, last = entries[0], entries[-1]
    return f"{first.index}..{last.index} terms {first.term}..{last.term}"


def _conf(conf: ConfState) -> str:
    return f"voters={sorted(conf.voters)} learners={sorted(conf.learners)}"
