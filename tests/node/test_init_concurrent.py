"""``init`` called concurrently (two SQL sessions calling ``pgraft_init()`` at once):
every ``true`` must mean the node leads its new cluster with its address recorded, not
merely that a bootstrap began (in-process, a real backend over SQLite, no sockets)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pgraft.control.protocol import Args
from pgraft.node import admin
from pgraft.node.config import NodeConfig
from pgraft.node.runtime import Node
from pgraft.node.wiring import Backend


def test_concurrent_init_calls_all_wait_for_the_bootstrap(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, list[int]]]:
        config = NodeConfig(1, "c", "127.0.0.1", 1, str(tmp_path))
        backend = Backend(config, None, lambda _m: None, lambda _h: True)
        node = Node(config, backend)
        driver = asyncio.create_task(node.run())
        seen: list[tuple[int, list[int]]] = []

        async def call() -> None:
            assert await admin.init(node, Args({})) is True
            seen.append((node.leader, sorted(backend.members())))

        try:
            await asyncio.wait_for(asyncio.gather(call(), call(), call()), 30)
            await asyncio.wait_for(call(), 30)  # and again, once done
        finally:
            node.stop()
            await driver
            backend.storage.close()
        return seen

    assert asyncio.run(scenario()) == [(1, [1])] * 4
