"""What a leader does: accept proposals, track followers, serve reads, hand over.

Theory of operation
-------------------
Proposals get the next indexes in the leader's term and are appended to its own log
(its own ``Progress`` advances at once: its entries reach disk before any message that
carries them is sent, per the ``Ready`` ordering) and then streamed to followers. A
proposal is dropped when the leader is handing over leadership, was removed, or has
more than ``max_uncommitted_bytes`` uncommitted. A membership change is dropped while
an earlier one is unapplied or before an entry of this term is committed (until then
the leader may not know the latest configuration).

Append responses drive ``Progress``: an acknowledgement moves ``match`` (perhaps the
commit index, then everybody hears about it), a rejection moves ``next`` back using the
follower's (hint_index, hint_term): the leader skips to the last index of its own log
whose term is ``<= hint_term``, so a whole divergent term is skipped in one round trip.

Every ``election_tick`` ticks the leader checks that a quorum was heard from since the
last check (CheckQuorum) and steps down otherwise; a leadership transfer still pending
then is abandoned (and retried, towards the best voter, by a leader that was removed).
Heartbeats go out every ``heartbeat_tick`` ticks and double as the
confirmation rounds of ReadIndex.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pgraft.core.progress import ProgressState
from pgraft.core.quorum import has_quorum
from pgraft.core.replication import (
    bcast_append,
    bcast_commit,
    bcast_heartbeat,
    maybe_commit,
    send_all,
    send_append,
    send_commit,
    send_snapshot,
)
from pgraft.core.types import (
    AppendResponse,
    ConfChange,
    ConfChangeType,
    Entry,
    EntryType,
    HeartbeatResponse,
    Message,
    ProposalDropped,
    Propose,
    ReadIndexRequest,
    ReadIndexResponse,
    ReadState,
    TimeoutNow,
    TransferLeader,
)

if TYPE_CHECKING:
    from pgraft.core.raft import Raft


def append_entries(r: Raft, ents: Sequence[tuple[EntryType, bytes]]) -> None:
    """Append new entries of the current term to the leader's log and send them."""
    log = r.log
    li = log.last_index()
    term = r.term
    entries = [Entry(term, li + i, t, d) for i, (t, d) in enumerate(ents, 1)]
    _append(r, entries)


def _append(r: Raft, entries: list[Entry]) -> None:
    log = r.log
    log.append(entries)
    last = entries[-1].index
    r.prs[r.id].maybe_update(last)
    commit_and_bcast(r)


def commit_and_bcast(r: Raft) -> None:
    """Advance the commit index if a quorum allows, then tell the followers."""
    _commit(r)
    bcast_append(r)


def _commit(r: Raft) -> bool:
    """Apply the commit rule; the first commit of the term releases waiting reads."""
    if not maybe_commit(r):
        return False
    if r.pending_reads and r.committed_in_term():
        pending, r.pending_reads = r.pending_reads, []
        for context, frm in pending:
            read_index(r, context, frm)
    return True


def propose(r: Raft, ents: Sequence[tuple[EntryType, bytes]], local: bool) -> None:
    """Raises ``ProposalDropped`` (only when ``local``; remote ones are dropped silently)."""
    size = sum([len(d) for _, d in ents])
    try:
        _check_proposal(r, size)
        changes = [d for t, d in ents if t == EntryType.CONF_CHANGE]
        if changes:
            _check_conf_change(r, changes)
    except ProposalDropped:
        if local:
            raise
        return
    li = r.log.last_index()
    term = r.term
    entries = [Entry(term, li + i, t, d) for i, (t, d) in enumerate(ents, 1)]
    for e in entries:
        if e.type == EntryType.CONF_CHANGE:
            r.pending_conf_index = e.index
    _track_uncommitted(r, entries[-1].index, size)
    _append(r, entries)


def propose_data(r: Raft, datas: Sequence[bytes]) -> None:
    """Fast path for local proposals of normal entries. Raises ``ProposalDropped``."""
    size = sum(map(len, datas))
    _check_proposal(r, size)
    li = r.log.last_index()
    term = r.term
    normal = EntryType.NORMAL
    entries = [Entry(term, i, normal, d) for i, d in enumerate(datas, li + 1)]
    _track_uncommitted(r, entries[-1].index, size)
    _append(r, entries)


def _track_uncommitted(r: Raft, last: int, size: int) -> None:
    if size:
        r.uncommitted_size += size
        r.uncommitted.append((last, size))


def _check_proposal(r: Raft, size: int) -> None:
    if r.id not in r.prs:
        raise ProposalDropped("this node was removed from the cluster")
    if r.lead_transferee:
        raise ProposalDropped("leadership transfer in progress")
    if r.uncommitted_size and r.uncommitted_size + size > r.cfg.max_uncommitted_bytes:
        raise ProposalDropped("too many uncommitted bytes")


def _check_conf_change(r: Raft, changes: list[bytes]) -> None:
    if len(changes) > 1 or r.pending_conf_index > r.log.applied:
        raise ProposalDropped("a membership change is already pending")
    if not r.committed_in_term():
        raise ProposalDropped("no entry of the leader's term committed yet")
    try:
        cc = ConfChange.decode(changes[0])
    except ValueError as exc:
        raise ProposalDropped(f"malformed membership change: {exc}") from None
    if cc.type != ConfChangeType.ADD_NODE and r.voters == {cc.node_id}:
        raise ProposalDropped("cannot remove or demote the last voter")


def step_leader(r: Raft, m: Message) -> None:
    if isinstance(m, AppendResponse):
        _handle_append_response(r, m)
    elif isinstance(m, HeartbeatResponse):
        _handle_heartbeat_response(r, m)
    elif m.frm not in r.prs:
        return  # client requests forwarded by non-members are dropped
    elif isinstance(m, Propose):
        if m.entries:
            propose(r, [(e.type, e.data) for e in m.entries], local=False)
    elif isinstance(m, ReadIndexRequest):
        read_index(r, m.context, m.frm)
    elif isinstance(m, TransferLeader):
        transfer_leadership(r, m.target)
    # Other kinds (votes of a finished election, ...) mean nothing to a leader.


def _handle_append_response(r: Raft, m: AppendResponse) -> None:
    pr = r.prs.get(m.frm)
    if pr is None:
        return
    pr.recent_active = True
    if m.reject:
        if pr.state == ProgressState.SNAPSHOT:
            return  # a snapshot is on its way (or times out): nothing else to send
        next_probe = m.hint_index
        if m.hint_term > 0:
            next_probe = r.log.find_conflict_by_term(m.hint_index, m.hint_term)
        if pr.maybe_decr_to(m.index, next_probe):
            if pr.state == ProgressState.REPLICATE:
                pr.become_probe()
            if m.index < r.log.first_index():
                # The follower lacks even the entry our snapshot ends at (a joining node
                # without configuration rejects everything): only a snapshot helps.
                send_snapshot(r, m.frm, pr)
            else:
                send_all(r, m.frm)
        return
    old_paused = pr.is_paused()
    if not pr.maybe_update(m.index) and not (
        (pr.state == ProgressState.SNAPSHOT and m.index >= pr.pending_snapshot)
        or (pr.state == ProgressState.PROBE and m.index == pr.match)
    ):
        return
    if pr.state == ProgressState.PROBE:
        pr.become_replicate()
    elif pr.state == ProgressState.SNAPSHOT:
        if pr.match + 1 < r.log.first_index():
            return
        pr.become_probe()
        pr.become_replicate()
    else:
        pr.inflights.free_le(m.index)
    if _commit(r):
        bcast_commit(r)
    elif old_paused:
        send_all(r, m.frm)
    else:
        while send_append(r, m.frm, send_if_empty=False):
            pass
        if pr.state == ProgressState.REPLICATE and pr.next > r.log.last_index():
            send_commit(r, m.frm)  # a follower that acknowledged late learns the commit
    if m.frm == r.lead_transferee and pr.match == r.log.last_index():
        r.send(TimeoutNow(r.cluster_id, r.id, m.frm, r.term))


def _handle_heartbeat_response(r: Raft, m: HeartbeatResponse) -> None:
    pr = r.prs.get(m.frm)
    if pr is None:
        return
    pr.recent_active = True
    pr.paused = False
    if pr.state == ProgressState.REPLICATE and pr.inflights.full():
        pr.inflights.free_first_one()  # appends may have been lost: let one more out
    if pr.match < r.log.last_index() or pr.state == ProgressState.PROBE:
        send_all(r, m.frm)
    if not m.context:
        return
    acks = r.read_only.recv_ack(m.frm, m.context)
    if acks is None or not has_quorum(r.voters, acks):
        return
    for req in r.read_only.advance(m.context):
        _answer_read(r, req.index, req.context, req.frm)


def _answer_read(r: Raft, index: int, context: bytes, frm: int) -> None:
    if frm == r.id:
        r.read_states.append(ReadState(index, context))
    else:
        r.send(ReadIndexResponse(r.cluster_id, r.id, frm, r.term, context, index))


def read_index(r: Raft, context: bytes, frm: int) -> None:
    """A read request (local when ``frm`` is this node) at the current commit index."""
    if r.voters == {r.id}:
        _answer_read(r, r.log.committed, context, frm)
    elif not r.committed_in_term():
        r.pending_reads.append((context, frm))
    else:
        key = r.read_only.add_request(r.log.committed, frm, context)
        if key:
            r.read_only.recv_ack(r.id, key)
            bcast_heartbeat(r, key)


def transfer_leadership(r: Raft, target: int) -> None:
    if target == r.id or target not in r.voters or target not in r.prs:
        return
    if r.lead_transferee == target:
        return
    r.election_elapsed = 0  # the transfer must finish within an election timeout
    r.lead_transferee = target
    if r.prs[target].match == r.log.last_index():
        r.send(TimeoutNow(r.cluster_id, r.id, target, r.term))
    else:
        send_all(r, target)


def hand_over(r: Raft, avoid: int = 0) -> None:
    """This leader is no longer a voter: transfer leadership to a recently active voter
    with the most of the log (ties: lowest id), other than ``avoid`` (a target that
    failed to take over) when there is a choice. Until then it keeps replicating."""
    voters = [v for v in sorted(r.voters) if v in r.prs]
    candidates = [v for v in voters if v != avoid] or voters
    if candidates:
        prs = r.prs
        best = max(candidates, key=lambda v: (prs[v].recent_active, prs[v].match, -v))
        transfer_leadership(r, best)


def tick_leader(r: Raft) -> None:
    r.heartbeat_elapsed += 1
    r.election_elapsed += 1
    cfg = r.cfg
    if r.election_elapsed >= cfg.election_tick:
        r.election_elapsed = 0
        if cfg.check_quorum:
            active = {nid for nid, pr in r.prs.items() if pr.recent_active or nid == r.id}
            if not has_quorum(r.voters, active):
                r.become_follower(r.term, 0)
                return
        failed, r.lead_transferee = r.lead_transferee, 0
        if not r.promotable():
            hand_over(r, avoid=failed)
        if cfg.check_quorum:
            for nid, pr in r.prs.items():
                if nid != r.id:
                    pr.recent_active = False
    for pr in r.prs.values():
        if pr.state == ProgressState.SNAPSHOT:
            pr.snapshot_ticks += 1
            if pr.snapshot_ticks > 3 * cfg.election_tick:
                pr.become_probe()  # the snapshot was probably lost: probe again
    if r.heartbeat_elapsed >= cfg.heartbeat_tick:
        r.heartbeat_elapsed = 0
        bcast_heartbeat(r, r.read_only.last_pending())
