"""White-box checks of the runtime's failure paths (.coord/node-bugs.md): a ReadIndex
round in flight fails fast with PR001 when the leader changes, and a fail-stop fails
every kind of waiter with 58030 and refuses new requests."""

from __future__ import annotations

import asyncio

import pytest

from pgraft.control.errors import ControlError
from pgraft.core.types import Role
from pgraft.node.config import NodeConfig
from pgraft.node.runtime import Node
from pgraft.storage import StorageFailure


def _node() -> Node:
    return Node(NodeConfig(1, "c", "127.0.0.1", 7001, "/nonexistent"), None)  # type: ignore[arg-type]


def test_reads_in_flight_fail_with_pr001_on_a_leader_change() -> None:
    async def scenario() -> ControlError:
        node = _node()
        node._on_soft_state(2, Role.FOLLOWER)
        fut = node.reads.wait(b"ctx")
        node._on_soft_state(0, Role.PRE_CANDIDATE)
        with pytest.raises(ControlError) as failed:
            await fut
        return failed.value

    assert asyncio.run(scenario()).code == "PR001"


def test_fail_stop_fails_every_waiter_with_58030() -> None:
    async def scenario() -> list[str]:
        node = _node()
        futures = [
            node.proposals.wait(b"rid"),
            node.reads.wait(b"ctx"),
            node.committed.wait(5),
            node.applied.wait(5),
        ]
        node.fail_stop(StorageFailure("/x/raft.db: database or disk is full"))
        codes = []
        for fut in futures:
            with pytest.raises(ControlError) as failed:
                await fut
            codes.append(failed.value.code)
        with pytest.raises(ControlError) as refused:
            node.propose(b"rid2", b"data")
        codes.append(refused.value.code)
        return codes

    assert asyncio.run(scenario()) == ["58030"] * 5
