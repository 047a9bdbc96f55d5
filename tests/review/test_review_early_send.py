"""Review finding: the leader's early send must not announce a commit it has not made
durable (see .coord/node-bugs.md "[node-reviewer] A sole voter's early-sent commit").

The runtime sends a leader's AppendEntries/Heartbeat *before* persisting the Ready
(``runtime._LEADER_KINDS``). That is safe only while the leader needs some other
node's acknowledgement to commit. A sole voter commits its own entries at once, so the
early-sent AppendEntries tells its learners "index i is committed" while i is not yet on
any disk: a crash or failed write at that moment leaves a learner that has applied an
entry the cluster then loses (the restarted leader writes something else at i).

The test drives the real ``Node._handle_ready`` over a recording backend and checks
that no message leaving before a Ready's fsync carries a commit index covering entries
of that Ready.
"""

from __future__ import annotations

import asyncio
import inspect
import random

from pgraft.core import Config, RawNode
from pgraft.core.storage import MemoryStorage
from pgraft.core.types import (
    AppendEntries,
    AppendResponse,
    ConfState,
    Heartbeat,
    Message,
    Ready,
    Role,
)
from pgraft.node.config import NodeConfig
from pgraft.node.runtime import Node


class RecordingBackend:
    """Persists into a ``MemoryStorage`` and records sends and persists in order."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self.events: list[tuple[str, object]] = []

    def persist(self, rd: Ready) -> dict[bytes, object]:
        if rd.entries:
            self.storage.append(list(rd.entries))
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        self.events.append(("persist", self.storage.last_index()))
        return {}

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
        handled = node._handle_ready(raw, raw.ready())
        if inspect.isawaitable(handled):  # the runtime's Ready handling may be async
            await handled


def test_sole_voter_does_not_announce_commit_before_fsync() -> None:
    async def scenario() -> tuple[int, list[tuple[str, object]]]:
        storage = MemoryStorage.bootstrap(ConfState(voters=frozenset({1}), learners=frozenset({2})))
        backend = RecordingBackend(storage)
        config = NodeConfig(1, "c", "127.0.0.1", 7001, "/nonexistent")
        node = Node(config, backend)  # type: ignore[arg-type]
        raw = RawNode(Config(node_id=1, cluster_id=7), storage, random.Random(1))
        node.raw = raw
        raw.campaign()
        await _drain(node, raw)
        assert node.role == Role.LEADER
        # The learner acknowledges everything so far: its progress leaves PROBE and
        # the leader streams new entries to it at once (the usual steady state).
        raw.step(AppendResponse(7, 2, 1, raw.status().term, storage.last_index()))
        await _drain(node, raw)
        durable = storage.last_index()
        backend.events.clear()
        raw.propose(b"")  # any entry; an empty one keeps the state machine out of it
        await _drain(node, raw)
        return durable, backend.events

    durable, events = asyncio.run(scenario())
    assert ("persist", durable + 1) in events  # the new entry was persisted at some point
    for kind, payload in events:
        if kind == "persist":
            assert isinstance(payload, int)
            durable = payload
            continue
        assert isinstance(payload, tuple)
        for m in payload:
            if isinstance(m, AppendEntries | Heartbeat):
                assert m.commit <= durable, (
                    f"{type(m).__name__} to node {m.to} announces commit {m.commit} "
                    f"while only index {durable} is durable (events: {events!r})"
                )
