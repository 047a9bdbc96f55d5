"""A leader steps acknowledgements while its own fsync runs (``Node._fsync_log``).

When a leader's Ready holds both new entries and entries committed by earlier Readies
(``Backend.can_split``), the runtime applies the committed part, then runs
``Backend.persist_log`` in the worker thread, and meanwhile steps the messages
``Node.deliver`` queues. What that stepping produces (a higher commit index, new
appends) waits in the core: the next Ready is taken only after the fsync finished and
this Ready was advanced.

The test drives the real ``Node`` and ``RawNode`` over a recording backend whose
``persist_log`` blocks on a ``threading.Event`` until the test releases it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import threading

from pgraft.core import Config, RawNode
from pgraft.core.storage import MemoryStorage
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    CommitNotice,
    ConfState,
    Heartbeat,
    Message,
    Ready,
    Role,
    VoteRequest,
    VoteResponse,
)
from pgraft.node.config import NodeConfig
from pgraft.node.runtime import Node

CLUSTER = 7
WAIT = 10.0  # upper bound for a thread event that should come promptly
SPINS = 200  # bounded loop turns for the driver to react


class BlockingBackend:
    """Persists into a ``MemoryStorage`` and records what the runtime asks of it, in
    order. ``persist_log`` (the split Ready's fsync, run in the worker thread) blocks
    until ``release`` is set."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self.events: list[tuple[str, object]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.fsync_threads: list[str] = []
        self.fsync_done = False

    def _save(self, rd: Ready) -> None:
        if rd.entries:
            self.storage.append(list(rd.entries))
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)

    def persist(self, rd: Ready) -> dict[bytes, object]:
        self._save(rd)
        self.events.append(("persist", self.storage.last_index()))
        return {}

    def can_split(self, rd: Ready) -> bool:
        return bool(rd.entries and rd.committed_entries)

    def apply_committed(self, rd: Ready) -> dict[bytes, object]:
        self.events.append(("apply", rd.committed_entries[-1].index))
        return {}

    def persist_log(self, rd: Ready) -> None:
        self.fsync_threads.append(threading.current_thread().name)
        self.events.append(("persist_log", rd.entries[-1].index))
        self.started.set()
        if not self.release.wait(WAIT):
            raise TimeoutError("the test never released the fsync")
        self._save(rd)
        self.fsync_done = True

    def send(self, messages: tuple[Message, ...]) -> None:
        self.events.append(("send", messages))

    def sync_peers(self) -> None:
        pass

    def maybe_compact(self, threshold: int, retention: int) -> None:
        return None


async def _drain(node: Node, raw: RawNode) -> None:
    for _ in range(20):  # bounded
        if not raw.has_ready():
            return
        await node._handle_ready(raw, raw.ready())
    raise AssertionError("the core kept producing Readies")


def _sent(events: list[tuple[str, object]]) -> list[Message]:
    out: list[Message] = []
    for kind, payload in events:
        if kind == "send":
            assert isinstance(payload, tuple)
            out.extend(payload)
    return out


async def _leader_with_replicating_follower(
    node: Node, raw: RawNode, backend: BlockingBackend
) -> int:
    """Elect node 1 among voters {1, 2, 3} and let follower 2 acknowledge the leader's
    first entry; returns the term."""
    raw.campaign()
    await _drain(node, raw)
    term = raw.status().term
    assert any(isinstance(m, VoteRequest) for m in _sent(backend.events))
    raw.step(VoteResponse(CLUSTER, 2, 1, term, reject=False))
    await _drain(node, raw)
    assert node.role == Role.LEADER
    raw.step(AppendResponse(CLUSTER, 2, 1, term, backend.storage.last_index()))
    await _drain(node, raw)
    status = raw.status()
    assert status.commit == backend.storage.last_index()
    assert status.progress[2].match == status.commit
    return term


async def _split_ready_pending() -> tuple[MemoryStorage, BlockingBackend, Node, RawNode, int, int]:
    """A leader of voters {1, 2, 3} whose entry a is durable and committed in the core
    (follower 2 acknowledged it) and entry b proposed: its next Ready holds b to fsync
    and a to apply, the split path. Returns (storage, backend, node, raw, term, a)."""
    storage = MemoryStorage.bootstrap(ConfState(voters=frozenset({1, 2, 3})))
    backend = BlockingBackend(storage)
    node = Node(NodeConfig(1, "c", "127.0.0.1", 7001, "/nonexistent"), backend)  # type: ignore[arg-type]
    raw = RawNode(Config(node_id=1, cluster_id=CLUSTER, pre_vote=False), storage, random.Random(1))
    node.raw = raw
    term = await _leader_with_replicating_follower(node, raw, backend)
    raw.propose(b"a")
    await _drain(node, raw)
    a = storage.last_index()
    raw.step(AppendResponse(CLUSTER, 2, 1, term, a))
    assert raw.status().commit == a
    raw.propose(b"b")
    return storage, backend, node, raw, term, a


def test_leader_steps_an_acknowledgement_during_its_fsync() -> None:
    async def scenario() -> None:
        storage, backend, node, raw, term, a = await _split_ready_pending()
        b = a + 1
        assert not backend.started.is_set()
        backend.events.clear()

        # As ``Node.run`` sets it up.
        executor = concurrent.futures.ThreadPoolExecutor(1, "pgraft-fsync")
        node._fsync_thread = executor
        try:
            driver = asyncio.create_task(node._iterate(raw))
            assert await asyncio.to_thread(backend.started.wait, WAIT), "no fsync started"
            assert node.applied.mark == a  # a was applied before the fsync began
            assert backend.events[-1] == ("persist_log", b)
            assert [k for k, _ in backend.events] == ["send", "apply", "persist_log"]
            early = _sent(backend.events)
            assert any(isinstance(m, AppendEntries) and m.to == 2 for m in early)
            before = list(backend.events)

            # Follower 2 acknowledges b while the leader's fsync of b is still running.
            node.deliver([AppendResponse(CLUSTER, 2, 1, term, b)])
            for _ in range(SPINS):
                if raw.status().progress[2].match == b:
                    break
                await asyncio.sleep(0)
            status = raw.status()
            assert status.progress[2].match == b, "the acknowledgement was not stepped"
            assert not backend.release.is_set() and not backend.fsync_done
            assert not driver.done()
            # Its effects wait in the core: committed there, nothing persisted, sent,
            # applied or advanced meanwhile.
            assert status.commit == b
            assert backend.events == before
            assert node.committed.mark == a and node.applied.mark == a
            assert raw.has_ready()

            backend.release.set()
            await asyncio.wait_for(driver, WAIT)
        finally:
            backend.release.set()
            executor.shutdown(wait=True)

        assert backend.fsync_done
        assert backend.fsync_threads == ["pgraft-fsync_0"]
        assert storage.last_index() == b
        after = backend.events[len(before) :]
        # The next Ready (b committed) came only after the fsync: it persisted the new
        # commit index and b was applied; the leader then told follower 2 about it.
        assert ("persist", b) in after
        assert storage.hard_state.commit == b
        assert node.committed.mark == b and node.applied.mark == b
        assert raw.status().applied == b
        assert not raw.has_ready()
        announced = [
            m.commit
            for m in _sent(after)
            if isinstance(m, AppendEntries | Heartbeat | CommitNotice) and m.to == 2
        ]
        assert announced and max(announced) == b

    asyncio.run(scenario())


def test_only_acknowledgements_are_stepped_during_the_fsync() -> None:
    """A message that could change more than progress (here a vote request of a higher
    term, which would depose the leader mid-Ready) waits for the fsync, and so does
    an acknowledgement queued behind it: the inbox keeps its order."""

    async def scenario() -> None:
        _storage, backend, node, raw, term, a = await _split_ready_pending()
        executor = concurrent.futures.ThreadPoolExecutor(1, "pgraft-fsync")
        node._fsync_thread = executor
        try:
            driver = asyncio.create_task(node._iterate(raw))
            assert await asyncio.to_thread(backend.started.wait, WAIT), "no fsync started"
            vote = VoteRequest(CLUSTER, 3, 1, term + 1, a + 1, term)
            ack = AppendResponse(CLUSTER, 2, 1, term, a + 1)
            node.deliver([vote, ack])
            for _ in range(SPINS):
                await asyncio.sleep(0)
            status = raw.status()
            assert status.term == term and status.role == Role.LEADER
            assert status.progress[2].match == a  # the ack waits behind the vote request
            assert list(node._inbox) == [vote, ack]
            backend.release.set()
            await asyncio.wait_for(driver, WAIT)
        finally:
            backend.release.set()
            executor.shutdown(wait=True)
        assert list(node._inbox) == [vote, ack]  # for the driver's next iteration
        assert raw.status().term == term

    asyncio.run(scenario())
