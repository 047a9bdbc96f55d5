"""What followers and (pre-)candidates do with messages.

Theory of operation
-------------------
A follower accepts the leader of its term (any sender of AppendEntries, Heartbeat,
CommitNotice or InstallSnapshot at the current term: a joining node does not know its
leader yet), restarts its election timer on each of those, and answers them (all but
the CommitNotice, which only moves its commit index). An append is accepted
when the log contains (prev_index, prev_term); the entries are then merged (a conflicting
suffix is truncated) and the commit index follows the leader's. A rejection carries a
hint: the follower's last index ``<= prev_index`` whose term is ``<= prev_term``, with
that term, which lets the leader skip a whole divergent term per round trip. A node
with an empty configuration (joining) rejects every append: it must start from the
leader's snapshot, which carries the configuration the log builds on.

Client requests reaching a follower (proposals, reads, transfer requests) are forwarded
to the leader it knows; without one, local requests fail with ``ProposalDropped``.

A candidate (or pre-candidate) counts the votes of its round; any message from a leader
of its term makes it a follower again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pgraft.core.quorum import VoteResult
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    CommitNotice,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    Propose,
    ReadIndexResponse,
    ReadState,
    Role,
    TimeoutNow,
    TransferLeader,
    VoteResponse,
)

if TYPE_CHECKING:
    from pgraft.core.raft import Raft


def step_follower(r: Raft, m: Message) -> None:
    if isinstance(m, AppendEntries):
        r.election_elapsed = 0
        r.lead = m.frm
        handle_append(r, m)
    elif isinstance(m, Heartbeat):
        r.election_elapsed = 0
        r.lead = m.frm
        handle_heartbeat(r, m)
    elif isinstance(m, CommitNotice):
        r.election_elapsed = 0
        r.lead = m.frm
        handle_commit(r, m)
    elif isinstance(m, InstallSnapshot):
        r.election_elapsed = 0
        r.lead = m.frm
        handle_snapshot(r, m)
    elif isinstance(m, Propose | TransferLeader):
        if r.lead and r.lead != m.frm:
            r.send(replace(m, frm=r.id, to=r.lead))
    elif isinstance(m, ReadIndexResponse):
        r.read_states.append(ReadState(m.index, m.context))
    elif isinstance(m, TimeoutNow):
        r.hup(transfer=True)
    # ReadIndexRequest from a peer: only leaders serve them; the asker retries.


def step_candidate(r: Raft, m: Message) -> None:
    if isinstance(m, AppendEntries):
        r.become_follower(m.term, m.frm)
        handle_append(r, m)
    elif isinstance(m, Heartbeat):
        r.become_follower(m.term, m.frm)
        handle_heartbeat(r, m)
    elif isinstance(m, CommitNotice):
        r.become_follower(m.term, m.frm)
        handle_commit(r, m)
    elif isinstance(m, InstallSnapshot):
        r.become_follower(m.term, m.frm)
        handle_snapshot(r, m)
    elif isinstance(m, VoteResponse):
        pre = r.role == Role.PRE_CANDIDATE
        if m.pre_vote != pre:
            return
        result = r.poll(m.frm, not m.reject)
        if result == VoteResult.WON:
            if pre:
                r.campaign(pre_vote=False, transfer=False)
            else:
                r.become_leader()
        elif result == VoteResult.LOST:
            r.become_follower(r.term, 0)
    # Proposals, reads and transfer requests are dropped: there is no leader.


def handle_append(r: Raft, m: AppendEntries) -> None:
    log = r.log
    ents = m.entries
    if ents and (ents[0].index != m.prev_index + 1 or ents[-1].index != m.prev_index + len(ents)):
        return  # malformed: not the entries following prev_index
    if m.prev_index < log.committed:
        r.send(AppendResponse(r.cluster_id, r.id, m.frm, r.term, log.committed))
        return
    last_new = None
    if r.voters or r.learners:  # without a configuration, wait for a snapshot
        last_new = log.maybe_append(m.prev_index, m.prev_term, m.commit, m.entries)
    if last_new is not None:
        r.send(AppendResponse(r.cluster_id, r.id, m.frm, r.term, last_new))
        return
    hint_index = log.find_conflict_by_term(min(m.prev_index, log.last_index()), m.prev_term)
    hint_term = log.term(hint_index)
    r.send(
        AppendResponse(r.cluster_id, r.id, m.frm, r.term, m.prev_index, True, hint_index, hint_term)
    )


def handle_heartbeat(r: Raft, m: Heartbeat) -> None:
    r.log.commit_to(m.commit)
    r.send(HeartbeatResponse(r.cluster_id, r.id, m.frm, r.term, m.context))


def handle_commit(r: Raft, m: CommitNotice) -> None:
    """Move the commit index; a notice past this log's end is not ours to trust (the
    leader only sends what this node acknowledged): ignored."""
    if m.commit <= r.log.last_index():
        r.log.commit_to(m.commit)


def handle_snapshot(r: Raft, m: InstallSnapshot) -> None:
    restore(r, m)
    r.send(AppendResponse(r.cluster_id, r.id, m.frm, r.term, r.log.committed))


def restore(r: Raft, m: InstallSnapshot) -> bool:
    """Restore from the snapshot unless it is not news; a joining node (no
    configuration) always takes it, even the bootstrap snapshot at index 0."""
    snap = m.snapshot
    meta = snap.meta
    log = r.log
    joining = not r.voters and not r.learners
    if meta.index < log.committed or (meta.index == log.committed and not joining):
        return False
    if not joining and log.match_term(meta.index, meta.term):
        log.commit_to(meta.index)  # we have that entry: just fast-forward the commit
        return False
    log.restore(snap)
    r.voters = set(meta.conf_state.voters)
    r.learners = set(meta.conf_state.learners) - r.voters
    r.removed -= r.voters | r.learners  # the snapshot's configuration supersedes ours
    r.become_follower(r.term, m.frm)
    return True
