"""Membership and leadership operations: init, add/remove node, transfer, promotion.

Theory of operation
-------------------
``init`` on a node without state bootstraps a one-member cluster with a fresh random
cluster id, campaigns until it leads (term 1), and then logs an ``ADD_NODE`` of itself
that records its address where members added later will find it.

``add_node`` works from any member: it proposes ``ADD_LEARNER`` with the address in the
change's context and waits until the locally applied configuration lists the node as a
voter. The promotion itself is the leader's job (``Promoter``, run periodically by the
node): a learner whose match index is within ``CATCH_UP_SLACK`` of the leader's last
index is promoted with ``ADD_NODE``; a learner that never acknowledged anything within
the join timeout (unreachable, or it refused to join because it holds other data) is
removed again, and the waiting ``add_node`` fails with 55000. Only one configuration
change can be pending at a time, and a change forwarded by a follower can be dropped
silently, so every change is re-proposed until its goal holds in the applied
configuration (``_change``), and the promoter simply tries again on its next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from pgraft.control.errors import (
    DUPLICATE_NODE,
    NO_LEADER,
    NOT_READY,
    TIMEOUT,
    UNKNOWN_NODE,
    ControlError,
    not_initialized,
)
from pgraft.control.protocol import Args
from pgraft.core import RawNode
from pgraft.core.types import ConfChange, ConfChangeType, ConfState, ProposalDropped, Role
from pgraft.node.ops import Op, wait_seconds
from pgraft.node.runtime import Node
from pgraft.node.wiring import address_context

log = logging.getLogger("pgraft.node")

CATCH_UP_SLACK = 64
MIN_ADD_WAIT_MS = 120_000


def _conf(node: Node) -> ConfState:
    if node.raw is None:
        raise not_initialized()
    return node.raw.status().conf


async def _change(
    node: Node, cc: ConfChange, done: Callable[[], bool], deadline: float, what: str
) -> None:
    """Propose ``cc`` until ``done()`` holds in the locally applied configuration.

    A proposal can be lost without an error (a follower forwards it and the leader
    drops it because another change is pending, or leadership moves), so it is proposed
    again every retry period while ``done()`` is false; every change here is idempotent
    once its goal holds. Raises 57014 at ``deadline``, PR001 without a leader."""
    retry_s = max(1.0, 2 * node.config.election_timeout_ms / 1000)
    while not done():
        try:
            await node.act(lambda raw: raw.propose_conf_change(cc))
        except ProposalDropped as exc:
            if node.leader == 0 and time.monotonic() + retry_s > deadline:
                raise ControlError(NO_LEADER, f"no leader to change membership ({exc})") from exc
        round_end = min(deadline, time.monotonic() + retry_s)
        while not done() and time.monotonic() < round_end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(node.conf_applied.wait(), round_end - time.monotonic())
        if not done() and time.monotonic() >= deadline:
            raise ControlError(TIMEOUT, f"timed out waiting for {what}")


async def _until(node: Node, done: Callable[[], bool], deadline: float, what: str) -> None:
    """Wait for configuration changes to apply until ``done()`` holds."""
    while not done():
        left = deadline - time.monotonic()
        if left <= 0:
            raise ControlError(TIMEOUT, f"timed out waiting for {what}")
        await node.wait(node.conf_applied.wait(), left, what)


async def init(node: Node, args: Args) -> object:
    """Bootstrap a one-member cluster; true once this node leads it and its address is
    in the log. Idempotent: a call made while an earlier one is still on its way waits
    for that same bootstrap (a cancelled caller does not cancel it); a call after one
    that failed (timed out) tries again while the node is still alone; on a node that
    has other members it just says true."""
    me = node.config.node_id
    if node.raw is None:
        node.initialize()
        node.bootstrapping = None
    pending = node.bootstrapping
    retry = pending is None or (pending.done() and not _succeeded(pending))
    alone = node.backend.storage.conf_state == ConfState(voters=frozenset({me}))
    if retry and alone:
        pending = node.bootstrapping = asyncio.ensure_future(
            lead_alone(node, wait_seconds(node, args))
        )
    if pending is not None and (not pending.done() or _succeeded(pending)):
        await asyncio.shield(pending)
    return True


def _succeeded(fut: asyncio.Future[None]) -> bool:
    return not fut.cancelled() and fut.exception() is None


async def lead_alone(node: Node, timeout_s: float) -> None:
    """Right after bootstrap: campaign (without waiting for an election timeout) until
    this node leads its one-member cluster, then record its address in the log."""
    me = node.config.node_id
    deadline = time.monotonic() + timeout_s
    round_s = node.config.election_timeout_ms / 1000
    while node.leader != me:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ControlError(TIMEOUT, "timed out waiting to become leader after init")
        changed = node.leader_changed
        await node.act(lambda raw: raw.campaign())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(left, round_s))
    cc = node.backend.self_address_change()
    await _change(node, cc, lambda: me in node.backend.members(), deadline, "the address entry")


async def add_node(node: Node, args: Args) -> object:
    nid = args.integer("node_id", 1)
    address = args.text("address")
    port = args.integer("port", 1, 65535)
    conf = _conf(node)
    if nid in conf.voters or nid in conf.learners:
        raise ControlError(DUPLICATE_NODE, f"node {nid} is already a member")
    timeout_ms = max(MIN_ADD_WAIT_MS, int(wait_seconds(node, args) * 1000))
    deadline = time.monotonic() + timeout_ms / 1000
    await _change(
        node,
        ConfChange(ConfChangeType.ADD_LEARNER, nid, address_context(address, port)),
        lambda: nid in _conf(node).learners or nid in _conf(node).voters,
        deadline,
        f"node {nid} to be added as a learner",
    )
    await _until(
        node,
        lambda: nid not in _conf(node).learners,
        deadline,
        f"node {nid} to catch up and be promoted",
    )
    if nid not in _conf(node).voters:
        raise ControlError(
            NOT_READY,
            f"node {nid} at {address}:{port} did not join: it was unreachable or refused "
            "(it holds data or belongs to another cluster); it was removed again",
        )
    return True


async def remove_node(node: Node, args: Args) -> object:
    nid = args.integer("node_id", 1)
    conf = _conf(node)
    if nid not in conf.voters and nid not in conf.learners:
        raise ControlError(UNKNOWN_NODE, f"node {nid} is not a member")
    if conf.voters == {nid}:
        raise ControlError(NOT_READY, f"node {nid} is the last voter and cannot be removed")
    deadline = time.monotonic() + wait_seconds(node, args)
    await _change(
        node,
        ConfChange(ConfChangeType.REMOVE_NODE, nid),
        lambda: nid not in _conf(node).voters and nid not in _conf(node).learners,
        deadline,
        f"node {nid} to be removed",
    )
    return True


async def transfer_leadership(node: Node, args: Args) -> object:
    target = args.integer("node_id", 1)
    if target not in _conf(node).voters:
        raise ControlError(UNKNOWN_NODE, f"node {target} is not a voting member")
    if node.leader == 0:
        raise ControlError(NO_LEADER, "no leader is known; retry")
    election_s = node.config.election_timeout_ms / 1000
    deadline = time.monotonic() + max(5.0, 4 * election_s)
    while node.leader != target:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ControlError(TIMEOUT, f"node {target} did not take over leadership in time")
        changed = node.leader_changed
        if node.leader != 0:
            with contextlib.suppress(ProposalDropped):  # e.g. a transfer is under way
                await node.act(lambda raw: raw.transfer_leadership(target))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(left, 2 * election_s))
    return True


async def set_debug(node: Node, args: Args) -> object:
    node.set_debug(args.flag("enabled"))
    return True


ADMIN_OPS: dict[str, Op] = {
    "init": init,
    "add_node": add_node,
    "remove_node": remove_node,
    "transfer_leadership": transfer_leadership,
    "set_debug": set_debug,
}


class Promoter:
    """The leader's periodic duty: promote caught-up learners, drop silent ones."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._first_seen: dict[int, float] = {}

    def join_timeout(self) -> float:
        return max(5.0, 4 * self._node.config.election_timeout_ms / 1000)

    def run_once(self, raw: RawNode) -> None:
        """Called in the driver; proposes at most one change."""
        st = raw.status()
        if st.role != Role.LEADER or not st.conf.learners:
            self._first_seen.clear()
            return
        now = time.monotonic()
        last = self._node.backend.storage.last_index()
        for nid in sorted(st.conf.learners):
            first = self._first_seen.setdefault(nid, now)
            pr = st.progress.get(nid)
            match = pr.match if pr is not None else 0
            if match > 0 and match + CATCH_UP_SLACK >= last:
                self._try(raw, ConfChange(ConfChangeType.ADD_NODE, nid), "promotes learner")
                return
            if match == 0 and now - first > self.join_timeout():
                self._try(
                    raw,
                    ConfChange(ConfChangeType.REMOVE_NODE, nid),
                    "removes learner that never answered",
                )
                return

    def _try(self, raw: RawNode, cc: ConfChange, verb: str) -> None:
        try:
            raw.propose_conf_change(cc)
        except ProposalDropped:
            return
        log.info("node %d %s %d", self._node.config.node_id, verb, cc.node_id)
