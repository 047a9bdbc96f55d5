"""Read-only control operations: who leads, who is a member, how far the log is.

Theory of operation
-------------------
Everything here is answered from this node's local view without consensus (a
follower's idea of the leader may be stale; ``sync_with_leader`` exists for callers that
need more). Per-follower progress (match index, lag, replication state) exists only on
the leader; elsewhere those fields are null. ``last_contact_ms`` comes from the
transport: milliseconds since the last frame from that peer.
"""

from __future__ import annotations

import os

from pgraft.control.protocol import Args
from pgraft.core import ProgressStatus
from pgraft.core.types import Role
from pgraft.node.ops import Op
from pgraft.node.runtime import Node

ROLE_NAMES = {
    Role.FOLLOWER: "follower",
    Role.PRE_CANDIDATE: "pre_candidate",
    Role.CANDIDATE: "candidate",
    Role.LEADER: "leader",
}


def state_name(node: Node) -> str:
    if node.raw is None:
        return "uninitialized"
    st = node.raw.status()
    if node.config.node_id in st.conf.learners:
        return "learner"
    if node.config.node_id not in st.conf.voters and st.conf.voters:
        return "removed"
    return ROLE_NAMES[st.role]


async def ping(node: Node, args: Args) -> object:
    return {"node_id": node.config.node_id, "pid": os.getpid()}


async def cluster_status(node: Node, args: Args) -> object:
    st = node.raw.status() if node.raw is not None else None
    return {
        "node_id": node.config.node_id,
        "cluster_id": node.backend.cluster_id,
        "current_term": st.term if st else 0,
        "leader_id": node.leader,
        "state": state_name(node),
        "num_nodes": len(st.conf.voters) + len(st.conf.learners) if st else 0,
        "messages_processed": st.messages_processed if st else 0,
        "heartbeats_sent": st.heartbeats_sent if st else 0,
        "elections_triggered": st.elections_started if st else 0,
    }


def _progress(node: Node) -> dict[int, ProgressStatus]:
    if node.raw is None:
        return {}
    st = node.raw.status()
    return dict(st.progress) if st.role == Role.LEADER else {}


async def nodes(node: Node, args: Args) -> object:
    if node.raw is None:
        return []
    st = node.raw.status()
    progress = _progress(node)
    members = node.backend.members()
    last = node.backend.storage.last_index()
    rows = []
    for nid in sorted(st.conf.voters | st.conf.learners):
        address, port = members.get(nid, ("", 0))
        if nid == node.config.node_id:
            address, port = node.config.address, node.config.port
        pr = progress.get(nid)
        match = last if nid == node.config.node_id and progress else (pr.match if pr else None)
        if nid == node.leader:
            state = "leader"
        elif pr is not None and not pr.recent_active and nid != node.config.node_id:
            state = "unreachable"
        else:
            state = "learner" if nid in st.conf.learners else "follower"
        rows.append(
            {
                "node_id": nid,
                "address": address,
                "port": port,
                "is_leader": nid == node.leader,
                "role": "learner" if nid in st.conf.learners else "voter",
                "state": state,
                "match_index": match,
                "lag": None if match is None else max(0, last - match),
                "last_contact_ms": node.backend.last_contact_ms(nid),
            }
        )
    return rows


async def replication_status(node: Node, args: Args) -> object:
    progress = _progress(node)
    last = node.backend.storage.last_index() if node.raw is not None else 0
    conf = node.raw.status().conf if node.raw is not None else None
    return [
        {
            "node_id": nid,
            "role": "learner" if conf is not None and nid in conf.learners else "voter",
            "state": pr.state.name.lower(),
            "match_index": pr.match,
            "next_index": pr.next,
            "lag": max(0, last - pr.match),
            "last_contact_ms": node.backend.last_contact_ms(nid),
        }
        for nid, pr in sorted(progress.items())
        if nid != node.config.node_id
    ]


async def term(node: Node, args: Args) -> object:
    return node.raw.status().term if node.raw is not None else 0


async def leader(node: Node, args: Args) -> object:
    return node.leader


async def is_leader(node: Node, args: Args) -> object:
    return node.raw is not None and node.leader == node.config.node_id


async def log_stats(node: Node, args: Args) -> object:
    if node.raw is None:
        return {
            "log_size": 0,
            "first_index": 0,
            "last_index": 0,
            "commit_index": 0,
            "last_applied": 0,
        }
    storage = node.backend.storage
    first, last = storage.first_index(), storage.last_index()
    return {
        "log_size": max(0, last - first + 1),
        "first_index": first,
        "last_index": last,
        "commit_index": node.committed.mark,
        "last_applied": node.applied.mark,
    }


async def queue_status(node: Node, args: Args) -> object:
    return {
        "pending_proposals": node.proposals.pending(),
        "pending_reads": len(node.reads),
        "pending_waits": len(node.committed) + len(node.applied),
        "unapplied_entries": max(0, node.committed.mark - node.applied.mark),
    }


REPORT_OPS: dict[str, Op] = {
    "ping": ping,
    "cluster_status": cluster_status,
    "nodes": nodes,
    "replication_status": replication_status,
    "term": term,
    "leader": leader,
    "is_leader": is_leader,
    "log_stats": log_stats,
    "queue_status": queue_status,
}
