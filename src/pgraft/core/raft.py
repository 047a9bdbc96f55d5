"""The Raft state of one node: term, vote, role transitions, elections and membership.

Theory of operation
-------------------
``Raft`` holds everything one member knows and reacts to three inputs: ``tick()``
(time), ``step(message)`` (a peer spoke) and local requests (propose, read, transfer,
campaign). Output accumulates in ``msgs`` and ``read_states``; ``RawNode`` hands them to
the runtime together with what must be persisted first.

``step`` first applies the rules every role shares (Raft §5.1): a message from a higher
term makes this node a follower of that term, except that a vote request arriving while
this node believes in a live leader (it heard from one within an election timeout and
CheckQuorum is on) is ignored unless it comes from a leadership transfer -- the leader
*lease* that keeps a partitioned or removed node from disrupting the cluster; vote
requests from a node whose removal this node applied are always ignored. PreVote
probes and granted PreVote answers change no term. Messages from lower terms are
ignored, except that a stale leader is told the current term so it steps down (§5.1).
Answers still queued from an older term are dropped when the term changes. Then
the role's handler runs: ``leader.step_leader``, ``follower.step_follower`` or
``follower.step_candidate``.

Elections: a follower whose election timer (randomized in ``[election_tick,
2 * election_tick)``) expires first runs a PreVote round at ``term + 1`` without changing
its term; only if a quorum would vote for it does it become a candidate, increment its
term and ask for real votes. A winner becomes leader and appends an empty entry, so that
an entry of its term gets committed (the commit rule of §5.4.2 counts only those).

Membership: the configuration is ``voters`` and ``learners`` (disjoint). Changes are
single-server and take effect when their entry is applied (``apply_conf_change``).
A node that is not a voter never campaigns; a leader that is no longer a voter hands
over: it keeps replicating (but accepts no proposals) until its most up-to-date voter
has everything, tells it to campaign (TimeoutNow) and steps down when that one wins.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace

from pgraft.core import follower, leader
from pgraft.core.config import Config
from pgraft.core.log import RaftLog
from pgraft.core.membership import apply_membership
from pgraft.core.progress import Progress
from pgraft.core.quorum import VoteResult, vote_result
from pgraft.core.readonly import ReadOnly
from pgraft.core.storage import Storage
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    CommitNotice,
    ConfChange,
    ConfigError,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    InstallSnapshot,
    Message,
    ProposalDropped,
    Propose,
    ReadIndexRequest,
    ReadState,
    Role,
    SoftState,
    TransferLeader,
    VoteRequest,
    VoteResponse,
)

_TERMLESS = (Propose, ReadIndexRequest, TransferLeader)
_FROM_LEADER = (AppendEntries, Heartbeat, CommitNotice, InstallSnapshot)


class Raft:
    __slots__ = (
        "cfg",
        "cluster_id",
        "dropped_cluster_mismatch",
        "election_elapsed",
        "elections_started",
        "heartbeat_elapsed",
        "heartbeats_sent",
        "id",
        "lead",
        "lead_transferee",
        "learners",
        "log",
        "messages_processed",
        "msgs",
        "pending_conf_index",
        "pending_reads",
        "prs",
        "randomized_election_timeout",
        "read_only",
        "read_states",
        "removed",
        "rng",
        "role",
        "term",
        "uncommitted",
        "uncommitted_size",
        "vote",
        "voters",
        "votes",
    )

    def __init__(self, cfg: Config, storage: Storage, rng: random.Random) -> None:
        self.cfg = cfg
        self.id = cfg.node_id
        self.cluster_id = cfg.cluster_id
        self.rng = rng
        self.log = RaftLog(storage)
        hs, cs = storage.initial_state()
        self.term = hs.term
        self.vote = hs.vote
        self.voters: set[int] = set(cs.voters)
        self.learners: set[int] = set(cs.learners) - self.voters
        self.removed: set[int] = set()  # members whose removal this node applied
        self.prs: dict[int, Progress] = {}
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.votes: dict[int, bool] = {}
        self.role = Role.FOLLOWER
        self.lead = 0
        self.lead_transferee = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = cfg.election_tick
        self.pending_conf_index = 0
        self.uncommitted: list[tuple[int, int]] = []  # (last index, bytes) per batch
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_reads: list[tuple[bytes, int]] = []  # waiting for a commit in term
        self.messages_processed = 0
        self.heartbeats_sent = 0
        self.elections_started = 0
        self.dropped_cluster_mismatch = 0
        log = self.log
        if hs.commit > log.last_index():
            raise ConfigError(f"hard state commit {hs.commit} beyond last index")
        log.commit_to(hs.commit)
        if cfg.applied:
            if cfg.applied > log.committed:
                raise ConfigError(f"applied {cfg.applied} beyond commit {log.committed}")
            if cfg.applied >= log.first_index():
                for e in log.slice(log.first_index(), cfg.applied + 1):
                    if e.type == EntryType.CONF_CHANGE:
                        apply_membership(self, ConfChange.decode(e.data))
            log.applied_to(max(cfg.applied, log.applied))
        self.become_follower(self.term, 0)

    # ------------------------------------------------------------ small helpers

    def send(self, m: Message) -> None:
        self.msgs.append(m)

    def promotable(self) -> bool:
        return self.id in self.voters

    def in_lease(self) -> bool:
        return (
            self.cfg.check_quorum
            and self.lead != 0
            and self.election_elapsed < self.cfg.election_tick
        )

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def set_timing(self, heartbeat_tick: int, election_tick: int) -> None:
        """Change the tick counts on a live node (keeps role, term and progress)."""
        self.cfg = replace(self.cfg, heartbeat_tick=heartbeat_tick, election_tick=election_tick)
        self.randomized_election_timeout = self.rng.randrange(election_tick, 2 * election_tick)
        self.heartbeat_elapsed = min(self.heartbeat_elapsed, heartbeat_tick)
        self.election_elapsed = min(self.election_elapsed, election_tick)

    def soft_state(self) -> SoftState:
        return SoftState(self.lead, self.role)

    def conf_state(self) -> ConfState:
        return ConfState(frozenset(self.voters), frozenset(self.learners))

    def committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    # ------------------------------------------------------------ role transitions

    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = 0
            # Answers queued at the old term may describe log entries the new term is about
            # to overwrite in this same Ready: drop them (Raft tolerates message loss).
            self.msgs = [m for m in self.msgs if m.term >= term or isinstance(m, _TERMLESS)]
        self.lead = 0
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        et = self.cfg.election_tick
        self.randomized_election_timeout = self.rng.randrange(et, 2 * et)
        self.lead_transferee = 0
        self.votes = {}
        last = self.log.last_index()
        inflight = self.cfg.max_inflight
        self.prs = {}
        for nid in sorted(self.voters | self.learners):
            pr = Progress(last + 1, inflight, nid in self.learners)
            if nid == self.id:
                pr.match = last
            self.prs[nid] = pr
        self.pending_conf_index = 0
        self.uncommitted = []
        self.uncommitted_size = 0
        self.read_only = ReadOnly()
        self.pending_reads = []

    def become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self.lead = lead
        self.role = Role.FOLLOWER

    def become_pre_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become pre-candidate"
        self.votes = {}
        self.lead = 0
        self.role = Role.PRE_CANDIDATE

    def become_candidate(self) -> None:
        assert self.role != Role.LEADER, "leader cannot become candidate"
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE
        self.elections_started += 1

    def become_leader(self) -> None:
        assert self.role != Role.FOLLOWER, "follower cannot become leader"
        self._reset(self.term)
        self.lead = self.id
        self.role = Role.LEADER
        self.prs[self.id].become_replicate()
        self.pending_conf_index = self.log.last_index()
        leader.append_entries(self, [(EntryType.NORMAL, b"")])

    # ------------------------------------------------------------ elections

    def hup(self, transfer: bool = False) -> None:
        """Start an election if this node may (PreVote first unless ``transfer``)."""
        if self.role == Role.LEADER or not self.promotable():
            return
        log = self.log
        if log.unstable_snapshot is not None:
            return  # a restored snapshot (and its configuration) must be applied first
        if log.committed > log.applied:
            pending = log.slice(max(log.applied + 1, log.first_index()), log.committed + 1)
            if any(e.type == EntryType.CONF_CHANGE for e in pending):
                return  # a committed membership change must be applied first
        self.campaign(pre_vote=self.cfg.pre_vote and not transfer, transfer=transfer)

    def campaign(self, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self.become_pre_candidate()
            vote_term = self.term + 1
        else:
            self.become_candidate()
            vote_term = self.term
        if self.poll(self.id, True) == VoteResult.WON:
            if pre_vote:
                self.campaign(pre_vote=False, transfer=transfer)
            else:
                self.become_leader()
            return
        last_index = self.log.last_index()
        last_term = self.log.last_term()
        for v in sorted(self.voters):
            if v != self.id:
                self.send(
                    VoteRequest(
                        self.cluster_id,
                        self.id,
                        v,
                        vote_term,
                        last_index,
                        last_term,
                        pre_vote,
                        transfer,
                    )
                )

    def poll(self, frm: int, granted: bool) -> VoteResult:
        self.votes.setdefault(frm, granted)
        return vote_result(self.voters, self.votes)

    def _handle_vote_request(self, m: VoteRequest) -> None:
        can_vote = (
            self.vote == m.frm
            or (self.vote == 0 and self.lead == 0)
            or (m.pre_vote and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.last_log_index, m.last_log_term):
            self.send(VoteResponse(self.cluster_id, self.id, m.frm, m.term, False, m.pre_vote))
            if not m.pre_vote:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.send(VoteResponse(self.cluster_id, self.id, m.frm, self.term, True, m.pre_vote))

    # ------------------------------------------------------------ inputs

    def tick(self) -> None:
        if self.role == Role.LEADER:
            leader.tick_leader(self)
            return
        self.election_elapsed += 1
        if self.promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.hup()

    def step(self, m: Message) -> None:
        """Handle a message from a peer. Messages of another cluster are dropped."""
        if m.cluster_id != self.cluster_id:
            self.dropped_cluster_mismatch += 1
            return
        self.messages_processed += 1
        t = type(m)
        if t in _TERMLESS:
            pass
        elif m.term > self.term:
            if isinstance(m, VoteRequest):
                if self.in_lease() and (not m.transfer or m.frm not in self.voters):
                    return  # a live leader: ignore disruptive (or non-member) candidates
                if m.frm in self.removed:
                    return  # we applied its removal: it must not change our term
                if not m.pre_vote:
                    self.become_follower(m.term, 0)
            elif isinstance(m, VoteResponse) and m.pre_vote and not m.reject:
                pass  # the term we would campaign in, not a newer one
            elif t in _FROM_LEADER:
                self.become_follower(m.term, m.frm)
            else:
                self.become_follower(m.term, 0)
        elif m.term < self.term:
            if t in _FROM_LEADER:
                # A stale leader (e.g. back from a partition) learns the term and steps down.
                self.send(AppendResponse(self.cluster_id, self.id, m.frm, self.term, 0))
            elif isinstance(m, VoteRequest) and m.pre_vote:
                self.send(VoteResponse(self.cluster_id, self.id, m.frm, self.term, True, True))
            return
        if isinstance(m, VoteRequest):
            if m.frm not in self.removed:
                self._handle_vote_request(m)
            return
        if self.role == Role.LEADER:
            leader.step_leader(self, m)
        elif self.role == Role.FOLLOWER:
            follower.step_follower(self, m)
        else:
            follower.step_candidate(self, m)

    def propose(self, ents: Sequence[tuple[EntryType, bytes]]) -> None:
        """Local proposal. Raises ``ProposalDropped`` when it cannot be accepted now."""
        if self.role == Role.LEADER:
            leader.propose(self, ents, local=True)
        elif self.role == Role.FOLLOWER and self.lead:
            entries = tuple([Entry(0, 0, t, d) for t, d in ents])
            self.send(Propose(self.cluster_id, self.id, self.lead, 0, entries))
        else:
            raise ProposalDropped("no leader")

    def read_index(self, context: bytes) -> None:
        """Local ReadIndex request. Raises ``ProposalDropped`` when there is no leader."""
        if self.role == Role.LEADER:
            leader.read_index(self, context, self.id)
        elif self.role == Role.FOLLOWER and self.lead:
            self.send(ReadIndexRequest(self.cluster_id, self.id, self.lead, 0, context))
        else:
            raise ProposalDropped("no leader")

    def transfer_leadership(self, target: int) -> None:
        """Raises ``ProposalDropped`` when there is no leader to ask."""
        if self.role == Role.LEADER:
            leader.transfer_leadership(self, target)
        elif self.role == Role.FOLLOWER and self.lead:
            self.send(TransferLeader(self.cluster_id, self.id, self.lead, 0, target))
        else:
            raise ProposalDropped("no leader")
