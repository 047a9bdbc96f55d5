"""Start a pgraft node the way the chaos harness needs it.

Usage: ``python -m pgraft.chaos.launch --config node.json`` (the same arguments as
``python -m pgraft.node``).

Theory of operation
-------------------
Partitions are made by (source, destination) address (``netns``), so every packet a node
sends must carry the node's own address as its source. When the node's transport dials
a peer without choosing a local address, the kernel picks 127.0.0.1 for every node.
This launcher therefore wraps ``BaseEventLoop.create_connection`` so that an outgoing
TCP connection without an explicit ``local_addr`` binds to the node's configured
address, then runs the node's ``__main__`` unchanged. The wrapper works only on the
standard asyncio loop, so uvloop is made unimportable in this process (the node falls
back to asyncio). Nothing in the product changes; broken builds for the harness's own
tests are made the same way, by patching before ``run``.
"""

from __future__ import annotations

import asyncio.base_events
import functools
import json
import runpy
import sys
from collections.abc import Sequence
from typing import Any


def bind_source_address(address: str) -> None:
    """Make outgoing TCP connections in this process originate from ``address``."""
    original = asyncio.base_events.BaseEventLoop.create_connection

    @functools.wraps(original)
    async def create_connection(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("local_addr") is None and kwargs.get("sock") is None:
            kwargs["local_addr"] = (address, 0)
        return await original(self, *args, **kwargs)

    asyncio.base_events.BaseEventLoop.create_connection = create_connection  # type: ignore[method-assign]
    # The wrapper above cannot reach into uvloop's loop: make the node use asyncio's.
    sys.modules["uvloop"] = None  # type: ignore[assignment]


def config_address(argv: Sequence[str]) -> str:
    """The ``address`` of the node.json named by ``--config`` in ``argv``."""
    args = list(argv)
    try:
        path = args[args.index("--config") + 1]
    except (ValueError, IndexError):
        raise SystemExit("usage: python -m pgraft.chaos.launch --config node.json") from None
    with open(path, encoding="utf-8") as f:
        return str(json.load(f)["address"])


def run(argv: Sequence[str]) -> None:
    """Run ``python -m pgraft.node`` with ``argv`` in this process."""
    bind_source_address(config_address(argv))
    sys.argv = ["pgraft.node", *argv]
    runpy.run_module("pgraft.node", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    run(sys.argv[1:])
