"""Membership changes: how a committed ``ConfChange`` alters the configuration.

Theory of operation
-------------------
The configuration is two disjoint sets, ``voters`` and ``learners``. Each single-server
change assigns one member a role -- voter (``ADD_NODE``, also the promotion of a
learner), learner (``ADD_LEARNER``) or none (``REMOVE_NODE``) -- so applying a change
twice is harmless, which is what lets a restart re-apply the changes logged after the
snapshot. Changes take effect when applied; the leader allows only one unapplied change
at a time and only after an entry of its term committed, which keeps any two successive
configurations overlapping in a majority (single-server change safety).

Removed members are remembered (until re-added): their vote requests are ignored, so a
node that missed its own removal cannot depose anyone even without PreVote/CheckQuorum.

A leader starts tracking a new member (probing from its own last index) and stops
tracking a removed one. A leader that is no longer a voter hands leadership over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pgraft.core import leader
from pgraft.core.progress import Progress
from pgraft.core.types import ConfChange, ConfChangeType, Role

if TYPE_CHECKING:
    from pgraft.core.raft import Raft


def apply_membership(r: Raft, cc: ConfChange) -> None:
    """Assign ``cc.node_id`` its new role (and remember removed members)."""
    nid = cc.node_id
    if cc.type == ConfChangeType.ADD_NODE:
        r.voters.add(nid)
        r.learners.discard(nid)
        r.removed.discard(nid)
    elif cc.type == ConfChangeType.ADD_LEARNER:
        r.voters.discard(nid)
        r.learners.add(nid)
        r.removed.discard(nid)
    else:
        r.voters.discard(nid)
        r.learners.discard(nid)
        r.removed.add(nid)


def apply_conf_change(r: Raft, cc: ConfChange) -> None:
    """A committed membership change is applied (called from ``RawNode.advance``)."""
    apply_membership(r, cc)
    nid = cc.node_id
    if nid in r.voters or nid in r.learners:
        pr = r.prs.get(nid)
        if pr is None:
            last = r.log.last_index()
            pr = Progress(last + 1, r.cfg.max_inflight)
            if nid == r.id:
                pr.match = last
            r.prs[nid] = pr
        pr.is_learner = nid in r.learners
    else:
        r.prs.pop(nid, None)
    if r.role != Role.LEADER:
        return
    if r.lead_transferee and r.lead_transferee not in r.voters:
        r.lead_transferee = 0
    leader.commit_and_bcast(r)
    if not r.promotable():
        leader.hand_over(r)
