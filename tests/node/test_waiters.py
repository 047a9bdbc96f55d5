"""Waiter bookkeeping of the runtime (no processes)."""

from __future__ import annotations

import asyncio

from pgraft.node.waiters import IndexWaiters, KeyedWaiters


def test_index_waiters_release_exactly_those_at_or_below_the_mark() -> None:
    async def scenario() -> None:
        w = IndexWaiters()
        futs = {i: w.wait(i) for i in (5, 1, 3, 9)}
        w.advance(3)
        assert [i for i, f in sorted(futs.items()) if f.done()] == [1, 3]
        assert len(w) == 2
        w.advance(2)  # a watermark never goes back
        assert w.mark == 3
        assert w.wait(2).done()
        futs[9].cancel()
        w.advance(10)
        assert futs[5].done() and len(w) == 0

    asyncio.run(scenario())


def test_keyed_waiters_resolve_once_and_forget_cancelled() -> None:
    async def scenario() -> None:
        w: KeyedWaiters[bytes, int] = KeyedWaiters()
        a, b = w.wait(b"a"), w.wait(b"b")
        assert w.resolve(b"a", 7) is True
        assert await a == 7
        assert w.resolve(b"a", 8) is False  # nobody waits any more
        b.cancel()
        assert w.pending() == 0
        assert w.resolve(b"b", 1) is False

    asyncio.run(scenario())


def test_keyed_waiters_sweep_abandoned_futures() -> None:
    """Futures that finish without ``resolve`` (timeouts, cancels) do not pile up."""
    from pgraft.node.waiters import PURGE_MIN

    async def scenario() -> None:
        w: KeyedWaiters[int, int] = KeyedWaiters()
        live = w.wait(-1)
        for i in range(10 * PURGE_MIN):
            w.wait(i).cancel()
            assert len(w) <= 2 * PURGE_MIN + 1
        assert w.pending() == 1
        assert w.resolve(-1, 5) is True and await live == 5

    asyncio.run(scenario())


def test_node_wait_times_out_with_57014_and_forgets_the_waiter() -> None:
    from pgraft.control.errors import ControlError
    from pgraft.node.config import NodeConfig
    from pgraft.node.runtime import Node

    async def scenario() -> None:
        node = Node(NodeConfig(1, "c", "127.0.0.1", 7001, "/nonexistent"), None)  # type: ignore[arg-type]
        slow = node.proposals.wait(b"slow")
        fast = node.proposals.wait(b"fast")
        done = asyncio.ensure_future(node.wait(fast, 30.0, "fast"))
        node.proposals.resolve(b"fast", 7)
        assert await done == 7
        try:
            await node.wait(slow, 0.1, "the entry to apply")
        except ControlError as err:
            assert err.code == "57014" and "0.1 s" in str(err), err
        else:
            raise AssertionError("no timeout")
        assert slow.done() and node.proposals.pending() == 0
        assert len(node._deadlines) == 0  # nothing left for the sweep
        try:
            await node.wait(asyncio.Event().wait(), 0.05, "an event")  # not a future
        except ControlError as err:
            assert err.code == "57014"
        else:
            raise AssertionError("no timeout")

    asyncio.run(scenario())
