"""Control-API operations on the log, the key-value map and the read barrier.

Theory of operation
-------------------
Each handler validates its arguments (``Args`` raises the uniform 22xxx errors), then
either reads local state or goes through consensus via the ``Node``: a write proposes a
command carrying a fresh 16-byte request id and waits for the state machine's result
for that id; a linearizable read asks the core for a ReadIndex, waits until this node
has applied up to it and then reads locally. Membership, status and lifecycle
operations live in ``pgraft.node.admin`` and ``pgraft.node.reports``;
``pgraft.node.app.HANDLERS`` joins the three tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Awaitable, Callable

from pgraft.control.errors import (
    DROPPED,
    INTERNAL,
    INVALID_PARAMETER,
    NO_LEADER,
    TERM_MISMATCH,
    TOO_LARGE,
    ControlError,
    not_initialized,
)
from pgraft.control.protocol import Args
from pgraft.core.types import ProposalDropped
from pgraft.node.runtime import Action, Node
from pgraft.statemachine import Result, commands

Op = Callable[[Node, Args], Awaitable[object]]

DEFAULT_WAIT_MS = 30_000

_RID_PREFIX = os.urandom(8)
_rid_seq = itertools.count()


def new_request_id() -> bytes:
    """A command's 16-byte request id: 8 random bytes drawn once per process, then a
    counter. Unique across the cluster like 16 random bytes per request (a collision
    needs two processes drawing the same prefix), without a syscall per request."""
    return _RID_PREFIX + next(_rid_seq).to_bytes(8, "big")


def wait_seconds(node: Node, args: Args) -> float:
    """The request's ``timeout_ms`` (default: 30 s, at least 4 election timeouts)."""
    default = max(DEFAULT_WAIT_MS, 4 * node.config.election_timeout_ms)
    return args.integer_or("timeout_ms", default, 1, 24 * 3600 * 1000) / 1000


def grace_seconds(node: Node) -> float:
    """How long a request waits for a leader to appear (after a restart, during an
    election) before it fails with PR001: two election timeouts, at least 1 s."""
    return max(1.0, 2 * node.config.election_timeout_ms / 1000)


async def leader_known(node: Node, until: float) -> bool:
    """Wait (until the monotonic time ``until``) for some leader to be known."""
    while node.leader == 0:
        left = until - time.monotonic()
        if left <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.leader_changed.wait(), left)
    return True


async def submit(node: Node, args: Args, make: Callable[[bytes], commands.Command]) -> Result:
    """Propose the command ``make(request_id)``; its result once applied here.

    Without a leader the request waits up to ``grace_seconds`` for one; a proposal the
    core refused (it was never appended) is proposed again within that grace."""
    rid = new_request_id()
    data = commands.encode(make(rid))
    if len(data) > node.config.max_entry_bytes:
        raise ControlError(
            TOO_LARGE,
            f"entry of {len(data)} bytes exceeds max_entry_bytes ({node.config.max_entry_bytes})",
        )
    if node.raw is None:
        raise not_initialized()
    timeout = wait_seconds(node, args)
    start = time.monotonic()
    grace_end = start + min(timeout, grace_seconds(node))
    while True:
        if not await leader_known(node, grace_end):
            raise ControlError(NO_LEADER, "no leader is known; retry")
        fut = node.propose(rid, data)
        left = start + timeout - time.monotonic()
        try:
            result: Result = await node.wait(fut, left, "the entry to apply")
            break
        except ControlError as exc:
            if exc.code not in (NO_LEADER, DROPPED) or time.monotonic() >= grace_end:
                raise
            await asyncio.sleep(0.02)  # e.g. a leadership transfer is finishing
    if result.kind == "fenced":
        raise ControlError(TERM_MISMATCH, f"entry {result.index} not appended: {result.error}")
    if result.error is not None:
        raise ControlError(INTERNAL, f"entry {result.index} was not applied: {result.error}")
    return result


async def read_index(node: Node, timeout: float) -> int:
    """The leader's commit index now (ReadIndex round). Waits up to ``grace_seconds``
    for a leader, then raises PR001."""
    if node.raw is None:
        raise not_initialized()
    start = time.monotonic()
    grace_end = start + min(timeout, grace_seconds(node))
    while True:
        if not await leader_known(node, grace_end):
            raise ControlError(NO_LEADER, "no leader is known; retry")
        ctx = os.urandom(16)
        fut = node.reads.wait(ctx)
        try:
            await node.act(_asks_read(ctx))
        except ProposalDropped as exc:
            fut.cancel()
            raise ControlError(NO_LEADER, f"no leader to confirm a read ({exc}); retry") from exc
        left = start + timeout - time.monotonic()
        try:
            return int(await node.wait(fut, left, "the leader to confirm a read index"))
        except ControlError as exc:  # PR001: the leader changed before it answered
            if exc.code != NO_LEADER or time.monotonic() >= grace_end:
                raise


def _asks_read(ctx: bytes) -> Action:
    return lambda raw: raw.read_index(ctx)


async def read_barrier(node: Node, args: Args) -> int:
    """ReadIndex: the leader's commit index when the call began, once applied here."""
    timeout = wait_seconds(node, args)
    index = await read_index(node, timeout)
    await node.wait(node.applied.wait(index), timeout, f"index {index} to apply")
    return index


async def log_append(node: Node, args: Args) -> object:
    """Append ``data``; with ``term`` != 0 only if the entry lands in that term.

    The fence is checked when the entry is applied, against the entry's own term (the
    leader's term when it appended it): the only race-free answer. A fenced entry
    stays in the Raft log as a no-op and never appears in ``log_read``."""
    term = args.integer("term")
    data = args.text("data")
    result = await submit(node, args, lambda rid: commands.LogAppend(rid, data.encode(), term))
    return result.reply


async def _existing_index(node: Node, args: Args) -> int:
    """The ``index`` argument, checked to exist: in this node's log, or (on a node that
    lags) at or below the leader's commit index, learnt by a read barrier."""
    index = args.integer("index", 1)
    if node.raw is None:
        raise not_initialized()
    last = node.backend.storage.last_index()
    if index <= last:
        return index
    known = last
    if node.leader != node.config.node_id:
        known = max(known, await read_index(node, wait_seconds(node, args)))
    if index > known:
        raise ControlError(
            INVALID_PARAMETER, f"log index {index} does not exist (last index is {known})"
        )
    return index


async def log_commit(node: Node, args: Args) -> object:
    index = await _existing_index(node, args)
    await node.wait(node.committed.wait(index), wait_seconds(node, args), f"index {index}")
    return True


async def log_apply(node: Node, args: Args) -> object:
    index = await _existing_index(node, args)
    await node.wait(node.applied.wait(index), wait_seconds(node, args), f"index {index}")
    return True


async def log_read(node: Node, args: Args) -> object:
    lo = args.integer("from_index", 1)
    hi = args.integer("to_index", 0)
    limit = args.integer_or("limit", 1000, 1, 100_000)
    if node.raw is None:
        raise not_initialized()
    return [{"index": i, "term": t, "data": d} for i, t, d in node.backend.log_read(lo, hi, limit)]


async def sync_with_leader(node: Node, args: Args) -> object:
    return await read_barrier(node, args)


async def kv_put(node: Node, args: Args) -> object:
    key, value = args.text("key"), args.text("value")
    return (await submit(node, args, lambda rid: commands.Put(rid, key, value))).reply


async def kv_get(node: Node, args: Args) -> object:
    key = args.text("key")
    index = await read_barrier(node, args)
    return {"value": node.backend.kv_get(key), "index": index}


async def kv_delete(node: Node, args: Args) -> object:
    key = args.text("key")
    return (await submit(node, args, lambda rid: commands.Delete(rid, key))).reply


async def kv_cas(node: Node, args: Args) -> object:
    key, expected, value = args.text("key"), args.optional_text("expected"), args.text("value")
    make = lambda rid: commands.CompareAndSet(rid, key, expected, value)  # noqa: E731
    return (await submit(node, args, make)).reply


DATA_OPS: dict[str, Op] = {
    "log_append": log_append,
    "log_commit": log_commit,
    "log_apply": log_apply,
    "log_read": log_read,
    "sync_with_leader": sync_with_leader,
    "kv_put": kv_put,
    "kv_get": kv_get,
    "kv_delete": kv_delete,
    "kv_cas": kv_cas,
}
