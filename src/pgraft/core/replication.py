"""Leader-side sending: appends, snapshots, heartbeats and the commit rule.

Theory of operation
-------------------
``send_append`` looks at a follower's ``Progress``: unless paused it sends the entries
from ``next`` on (at most ``max_msg_entries`` and about ``max_msg_bytes``), preceded by
(``prev_index``, ``prev_term``) so the follower can check that its log matches up to
there. In REPLICATE state ``next`` advances immediately and the append is recorded in
the in-flight window, so several appends can be on the wire at once (pipelining). If the
entries before ``next`` were compacted the follower gets an ``InstallSnapshot`` instead.

When the commit index moves (``bcast_commit``), a replicating follower that has nothing
to receive is told with a ``CommitNotice`` (``min(commit, match)``, as a heartbeat
would) instead of an empty append: it is not answered, which saves a message each
way per commit; ``Progress.sent_commit`` avoids repeating it, and a follower whose
acknowledgement arrives after the commit gets one then. Probing followers still get
an empty append, whose answer the leader needs.

``maybe_commit`` applies Raft's commit rule: the commit index becomes the largest index
that a quorum of voters has, but only if the entry there is of the leader's current
term (§5.4.2); older entries then commit implicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgraft.core.progress import Progress, ProgressState
from pgraft.core.quorum import committed_index
from pgraft.core.types import (
    AppendEntries,
    CommitNotice,
    Compacted,
    Heartbeat,
    InstallSnapshot,
    Unavailable,
)

if TYPE_CHECKING:
    from pgraft.core.raft import Raft


def send_append(r: Raft, to: int, send_if_empty: bool = True) -> bool:
    """Send ``to`` what it lacks; returns whether a message was sent."""
    pr = r.prs[to]
    if pr.is_paused():
        return False
    log = r.log
    nxt = pr.next
    try:
        prev_term = log.term(nxt - 1)
        ents = log.entries_from(nxt, r.cfg.max_msg_entries, r.cfg.max_msg_bytes)
    except Compacted:
        return send_snapshot(r, to, pr)
    if not ents and not send_if_empty:
        return False
    ents = tuple(ents)
    r.msgs.append(
        AppendEntries(r.cluster_id, r.id, to, r.term, nxt - 1, prev_term, ents, log.committed)
    )
    pr.sent_commit = max(pr.sent_commit, min(log.committed, nxt - 1 + len(ents)))
    if pr.state == ProgressState.REPLICATE:
        if ents:
            last = ents[-1].index
            pr.next = last + 1
            pr.inflights.add(last)
    else:
        pr.paused = True
    return True


def send_snapshot(r: Raft, to: int, pr: Progress) -> bool:
    if not pr.recent_active:
        return False
    try:
        snap = r.log.snapshot()
    except Unavailable:
        return False  # the storage is still building one; a later heartbeat retries
    r.msgs.append(InstallSnapshot(r.cluster_id, r.id, to, r.term, snap))
    pr.become_snapshot(snap.meta.index)
    return True


def send_all(r: Raft, to: int) -> None:
    """Send appends to ``to`` until it is paused or has everything (pipelining)."""
    if send_append(r, to):
        pr = r.prs[to]
        while pr.state == ProgressState.REPLICATE and send_append(r, to, False):
            pass


def bcast_append(r: Raft) -> None:
    for nid in r.prs:
        if nid != r.id:
            send_all(r, nid)


def send_commit(r: Raft, to: int) -> None:
    """Tell a replicating follower that has nothing to receive the commit index it can
    use (``min(commit, match)``: its log matches ours up to ``match``), if that is news.
    A ``CommitNotice`` is not answered."""
    pr = r.prs[to]
    commit = min(r.log.committed, pr.match)
    if commit > pr.sent_commit:
        r.msgs.append(CommitNotice(r.cluster_id, r.id, to, r.term, commit))
        pr.sent_commit = commit


def bcast_commit(r: Raft) -> None:
    """The commit index moved: a replicating follower with nothing to receive gets a
    ``CommitNotice``; every other follower gets appends as usual (they carry the
    commit index; an empty one to a probing follower is answered, which it needs)."""
    last = r.log.last_index()
    for nid, pr in r.prs.items():
        if nid == r.id:
            continue
        if pr.state == ProgressState.REPLICATE and pr.next > last:
            send_commit(r, nid)
        else:
            send_all(r, nid)


def send_heartbeat(r: Raft, to: int, context: bytes) -> None:
    pr = r.prs[to]
    commit = min(pr.match, r.log.committed)
    r.msgs.append(Heartbeat(r.cluster_id, r.id, to, r.term, commit, context))
    r.heartbeats_sent += 1


def bcast_heartbeat(r: Raft, context: bytes) -> None:
    for nid in r.prs:
        if nid != r.id:
            send_heartbeat(r, nid, context)


def maybe_commit(r: Raft) -> bool:
    """Advance the commit index by the quorum rule; True if it moved."""
    prs = r.prs
    match = {v: prs[v].match for v in r.voters if v in prs}
    if not r.log.maybe_commit(committed_index(r.voters, match), r.term):
        return False
    if r.uncommitted:
        committed = r.log.committed
        batches = r.uncommitted
        done = 0
        while done < len(batches) and batches[done][0] <= committed:
            r.uncommitted_size -= batches[done][1]
            done += 1
        del batches[:done]
    return True
