"""Helpers for live transport tests: start transports on free loopback ports, wait for
conditions with a bounded number of polls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pgraft.core.types import Message
from pgraft.transport import Transport

CLUSTER_ID = 42


class Node:
    """A transport plus everything it received."""

    def __init__(self, node_id: int, **kw: Any) -> None:
        self.received: list[Message] = []
        kw.setdefault("backoff_initial", 0.01)
        kw.setdefault("backoff_max", 0.1)
        kw.setdefault("handshake_timeout", 5.0)
        self.cluster_id = kw.pop("cluster_id", CLUSTER_ID)
        self.t = Transport(
            node_id,
            kw.pop("cluster_name", "c1"),
            lambda: self.cluster_id,
            kw.pop("host", "127.0.0.1"),
            kw.pop("port", 0),
            on_messages=self.received.extend,
            **kw,
        )

    async def __aenter__(self) -> Node:
        await self.t.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.t.close()


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``cond`` every 10 ms; raise AssertionError after ``timeout`` seconds."""
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def settle(seconds: float = 0.2) -> None:
    await asyncio.sleep(seconds)


async def proxy(target_port: int, capture: bytearray) -> asyncio.Server:
    """A loopback TCP proxy that records every byte in both directions."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                capture.extend(data)
                writer.write(data)
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0)
