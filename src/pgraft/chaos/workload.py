"""Concurrent clients: key-value operations and log appends, every one recorded.

Theory of operation
-------------------
Each client is an asyncio task that repeatedly picks a node at random (dead, paused
and partitioned ones included -- that is the point) and performs one operation through
that node's control socket, recording the invocation before the request is written and
the completion when the reply arrives:

* a reply ``ok`` is ``ok``;
* an error the node raises *before* proposing anything (invalid argument, not
  initialised, no leader, proposal dropped -- see ``DEFINITE_FAILURES``) is ``fail``;
* every other error, a timeout, or a connection lost after the request was written is
  ``info`` (indeterminate), and the client continues as a fresh process;
* failing to connect at all means nothing was sent: ``fail``.

Keys rotate: a key serves a bounded number of operations and is then replaced by a
fresh one, which keeps every per-key history small enough for the linearizability
search whatever the run's length (Jepsen's "independent" keys). Values and log payloads
are unique, so a read names the write it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from dataclasses import dataclass
from typing import Any

from pgraft.chaos.cluster import Cluster
from pgraft.chaos.history import History, OpKind, Outcome, Scalar, Value
from pgraft.control.client import AsyncControlClient
from pgraft.control.errors import (
    DROPPED,
    INVALID_PARAMETER,
    NO_LEADER,
    NOT_READY,
    NULL_VALUE,
    OUT_OF_RANGE,
    TOO_LARGE,
    ControlError,
)

DEFINITE_FAILURES = frozenset(
    {NULL_VALUE, INVALID_PARAMETER, OUT_OF_RANGE, TOO_LARGE, NOT_READY, NO_LEADER, DROPPED}
)


@dataclass(frozen=True)
class WorkloadConfig:
    kv_clients: int = 4
    append_clients: int = 2
    active_keys: int = 3
    ops_per_key: int = 120
    op_timeout_s: float = 5.0
    pause_s: float = 0.02  # between one client's operations


class Workload:
    def __init__(
        self, cluster: Cluster, history: History, rng: random.Random, config: WorkloadConfig
    ) -> None:
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.config = config
        self._processes = itertools.count(1)
        self._key_names = itertools.count()
        self._keys = [self._fresh_key() for _ in range(config.active_keys)]
        self._key_ops = dict.fromkeys(self._keys, 0)
        self._seen: dict[str, str | None] = {}
        self._payloads = itertools.count()

    def _fresh_key(self) -> str:
        return f"k{next(self._key_names)}"

    def _pick_key(self) -> str:
        slot = self.rng.randrange(len(self._keys))
        key = self._keys[slot]
        self._key_ops[key] = self._key_ops.get(key, 0) + 1
        if self._key_ops[key] >= self.config.ops_per_key:
            self._keys[slot] = self._fresh_key()
        return key

    async def run(self, stop: asyncio.Event) -> None:
        clients = [self._kv_client(stop) for _ in range(self.config.kv_clients)]
        clients += [self._append_client(stop) for _ in range(self.config.append_clients)]
        await asyncio.gather(*clients)

    async def _kv_client(self, stop: asyncio.Event) -> None:
        process = next(self._processes)
        while not stop.is_set():
            key = self._pick_key()
            roll = self.rng.random()
            value = f"v{process}.{len(self.history)}"
            kind: OpKind
            args: tuple[Scalar, ...]
            if roll < 0.3:
                kind, args = OpKind.PUT, (value,)
            elif roll < 0.7:
                kind, args = OpKind.GET, ()
            elif roll < 0.95:
                kind, args = OpKind.CAS, (self._seen.get(key), value)
            else:
                kind, args = OpKind.DELETE, ()
            if await self._perform(process, kind, key, args) is Outcome.INFO:
                process = next(self._processes)
            await asyncio.sleep(self.rng.random() * 2 * self.config.pause_s)

    async def _append_client(self, stop: asyncio.Event) -> None:
        process = next(self._processes)
        while not stop.is_set():
            data = f"p{process}.{next(self._payloads)}"
            if await self._perform(process, OpKind.APPEND, None, (data,)) is Outcome.INFO:
                process = next(self._processes)
            await asyncio.sleep(self.rng.random() * 2 * self.config.pause_s)

    async def _perform(
        self, process: int, kind: OpKind, key: str | None, args: tuple[Scalar, ...]
    ) -> Outcome:
        node = self.cluster.nodes[self.rng.choice(self.cluster.ids)]
        op_id = self.history.invoke(process, kind, key, args, node.node_id)
        try:
            async with asyncio.timeout(1.0):
                client = await AsyncControlClient.connect(node.socket)
        except (OSError, TimeoutError) as exc:
            self.history.complete(op_id, Outcome.FAIL, error=f"connect: {exc!r}")
            return Outcome.FAIL
        try:
            async with asyncio.timeout(self.config.op_timeout_s):
                op, params = request(kind, key, args)
                reply = await client.call(op, **params)
        except ControlError as exc:
            outcome = Outcome.FAIL if exc.code in DEFINITE_FAILURES else Outcome.INFO
            self.history.complete(op_id, outcome, error=exc.code)
            return outcome
        except (OSError, TimeoutError, ValueError) as exc:
            self.history.complete(op_id, Outcome.INFO, error=repr(exc))
            return Outcome.INFO
        finally:
            with contextlib.suppress(OSError):
                await client.close()
        result = interpret(kind, reply)
        self.history.complete(op_id, Outcome.OK, result)
        seen = result
        if kind is OpKind.CAS and isinstance(result, tuple):
            seen = args[1] if result[0] is True else result[1]
        if key is not None and kind in (OpKind.GET, OpKind.CAS):
            self._seen[key] = seen if isinstance(seen, str) else None
        return Outcome.OK


def request(kind: OpKind, key: str | None, args: tuple[Scalar, ...]) -> tuple[str, dict[str, Any]]:
    """The control-API request for an operation (docs/contracts.md §3)."""
    match kind:
        case OpKind.PUT:
            return "kv_put", {"key": key, "value": args[0]}
        case OpKind.GET:
            return "kv_get", {"key": key}
        case OpKind.CAS:
            return "kv_cas", {"key": key, "expected": args[0], "value": args[1]}
        case OpKind.DELETE:
            return "kv_delete", {"key": key}
        case OpKind.APPEND:
            return "log_append", {"term": 0, "data": args[0]}


def interpret(kind: OpKind, reply: Any) -> Value:
    """The history's result for a successful reply (conventions in ``history.Op``)."""
    match kind:
        case OpKind.PUT:
            return None
        case OpKind.GET:
            value = reply["value"]
            return value if isinstance(value, str) else None
        case OpKind.CAS:
            return (bool(reply["ok"]), reply["value"])
        case OpKind.DELETE:
            return bool(reply["deleted"])
        case OpKind.APPEND:
            return int(reply)
