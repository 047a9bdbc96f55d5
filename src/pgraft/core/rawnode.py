"""``RawNode``: the Raft core as the runtime drives it.

Theory of operation
-------------------
The runtime feeds inputs (``tick``, ``step``, ``propose``...) and then, whenever
``has_ready()``, takes one ``Ready``, handles it in the order its docstring prescribes
(persist, send, apply) and calls ``advance(ready)``. Between ``ready()`` and
``advance()`` more input may arrive; its effects go into the next ``Ready``. Every
message in a ``Ready`` depends only on state persisted by that same ``Ready`` (or an
earlier one), because all output is produced by the state machine before ``ready()``
collects it and the runtime persists before sending.

``advance`` marks the ready's entries and snapshot stable, records what was applied
and makes committed membership changes take effect.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pgraft.core import leader
from pgraft.core.config import Config
from pgraft.core.membership import apply_conf_change
from pgraft.core.raft import Raft
from pgraft.core.status import ProgressStatus, Status
from pgraft.core.storage import Storage
from pgraft.core.types import (
    ConfChange,
    Entry,
    EntryType,
    Message,
    Ready,
    Role,
)


class RawNode:
    __slots__ = ("_prev_hard", "_prev_soft", "raft")

    def __init__(self, config: Config, storage: Storage, rng: random.Random) -> None:
        self.raft = Raft(config, storage, rng)
        self._prev_soft = self.raft.soft_state()
        self._prev_hard = self.raft.hard_state()

    # ------------------------------------------------------------ inputs

    def tick(self) -> None:
        self.raft.tick()

    def step(self, msg: Message) -> None:
        """A message from a peer; messages of another cluster are dropped (and counted)."""
        self.raft.step(msg)

    def propose(self, data: bytes) -> None:
        """Raises ``ProposalDropped``."""
        self.propose_many((data,))

    def propose_many(self, datas: Sequence[bytes]) -> None:
        """Propose several normal entries at once. Raises ``ProposalDropped``."""
        if not datas:
            return
        r = self.raft
        if r.role == Role.LEADER:
            leader.propose_data(r, datas)
        else:
            r.propose([(EntryType.NORMAL, d) for d in datas])

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Raises ``ProposalDropped`` (no leader, a change pending, removing the last
        voter...). A follower forwards it; the leader may still drop it silently."""
        self.raft.propose([(EntryType.CONF_CHANGE, cc.encode())])

    def campaign(self) -> None:
        """Start an election now (PreVote first when enabled)."""
        self.raft.hup()

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read; answered as a ``ReadState`` with ``context``.
        Raises ``ProposalDropped`` when no leader is known."""
        self.raft.read_index(context)

    def transfer_leadership(self, target: int) -> None:
        """Ask the leader to hand over to ``target``. Raises ``ProposalDropped`` when no
        leader is known."""
        self.raft.transfer_leadership(target)

    def set_timing(self, heartbeat_tick: int, election_tick: int) -> None:
        """Change ``heartbeat_tick``/``election_tick`` without restarting (role, term and
        progress are kept; the election timeout is re-randomized). Raises ``ConfigError``
        for values ``Config`` would refuse."""
        self.raft.set_timing(heartbeat_tick, election_tick)

    # ------------------------------------------------------------ output

    def has_ready(self) -> bool:
        r = self.raft
        log = r.log
        return bool(
            r.msgs
            or log.unstable
            or log.unstable_snapshot is not None
            or r.read_states
            or log.has_next_committed()
            or r.term != self._prev_hard.term
            or r.vote != self._prev_hard.vote
            or log.committed != self._prev_hard.commit
            or r.lead != self._prev_soft.leader
            or r.role != self._prev_soft.role
        )

    def ready(self) -> Ready:
        r = self.raft
        log = r.log
        soft = None
        if r.lead != self._prev_soft.leader or r.role != self._prev_soft.role:
            soft = self._prev_soft = r.soft_state()
        hard = None
        prev = self._prev_hard
        if r.term != prev.term or r.vote != prev.vote or log.committed != prev.commit:
            hard = self._prev_hard = r.hard_state()
        committed: tuple[Entry, ...] = ()
        if log.has_next_committed():
            ents = tuple(log.next_committed())
            if ents:
                log.applying = ents[-1].index
            committed = ents
        msgs = tuple(r.msgs)
        r.msgs.clear()
        r.read_only.seal()  # heartbeats of the open ReadIndex round leave now
        read_states = tuple(r.read_states)
        r.read_states.clear()
        return Ready(
            soft_state=soft,
            hard_state=hard,
            entries=tuple(log.unstable),
            snapshot=log.unstable_snapshot,
            committed_entries=committed,
            messages=msgs,
            read_states=read_states,
        )

    def advance(self, ready: Ready) -> None:
        r = self.raft
        log = r.log
        if ready.snapshot is not None:
            index = ready.snapshot.meta.index
            log.stable_snap_to(index)
            log.applied_to(index)
        if ready.entries:
            last = ready.entries[-1]
            log.stable_to(last.index, last.term)
        ents = ready.committed_entries
        if ents:
            # A snapshot restored since this Ready was made supersedes its older changes.
            snap = log.unstable_snapshot
            stale = snap.meta.index if snap is not None else 0
            for e in [e for e in ents if e.type]:
                if e.type == EntryType.CONF_CHANGE and e.index > stale:
                    apply_conf_change(r, ConfChange.decode(e.data))
            log.applied_to(ents[-1].index)

    # ------------------------------------------------------------ introspection

    def status(self) -> Status:
        r = self.raft
        progress = {}
        if r.role == Role.LEADER:
            progress = {
                nid: ProgressStatus(
                    pr.match,
                    pr.next,
                    pr.state,
                    pr.recent_active,
                    pr.inflights.count(),
                    pr.is_learner,
                )
                for nid, pr in r.prs.items()
            }
        return Status(
            id=r.id,
            term=r.term,
            vote=r.vote,
            commit=r.log.committed,
            applied=r.log.applied,
            role=r.role,
            leader=r.lead,
            conf_state=r.conf_state(),
            progress=progress,
            lead_transferee=r.lead_transferee,
            messages_processed=r.messages_processed,
            heartbeats_sent=r.heartbeats_sent,
            elections_started=r.elections_started,
            dropped_cluster_mismatch=r.dropped_cluster_mismatch,
            first_index=r.log.first_index(),
            last_index=r.log.last_index(),
        )
