"""SQL clients for the PostgreSQL chaos variant: every call recorded, probes timed.

Theory of operation
-------------------
The clients are those of ``pgraft.chaos.workload`` moved behind PostgreSQL: each is an
asyncio task that picks one of the servers at random (stopped ones included), keeps one
autocommit psycopg connection per server, and runs one SQL function call per operation
-- ``pgraft_kv_put``, ``pgraft_kv_get`` (a linearizable read), ``pgraft_kv_cas`` or
``pgraft_log_append(0, payload)``. The invocation is recorded before the connection is
even opened; the completion when the statement returns. ``statement_timeout`` is the
client timeout (an asyncio deadline a few seconds later backs it up). Outcomes:

* the function returned: ``ok``. A ``pgraft_kv_cas`` that returned false is recorded as
  ``info`` instead: the SQL function does not say which value it found, and the history
  model needs that value for a definite refusal (an ``info`` CAS that did not swap is
  still consistent: the checker may place it "never");
* nothing was sent -- the server could not be reached at all, or pgraft's client in the
  server could not connect to the node (SQLSTATE 08006 from ``connect``) -- or the node
  refused before proposing (``DEFINITE_SQLSTATES``): ``fail``;
* anything else -- a statement timeout (57014), the server dying under the statement,
  a node crashing mid-call, any other error: ``info``, and the client continues as a
  fresh process.

Keys rotate as in the bare-node workload so per-key histories stay small. The
``SqlProber`` writes a probe key through a random server every 50 ms; its
acknowledgements time each fault's recovery and outage, as ``faults.Prober`` does for
bare nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg

from pgraft.chaos.faults import ProbeLog
from pgraft.chaos.history import History, OpKind, Outcome, Scalar, Value
from pgraft.chaos.workload import WorkloadConfig

DEFINITE_SQLSTATES = frozenset({"PR001", "PR002", "55000", "22023"})
NOT_CONNECTED = ("No such file or directory", "Connection refused")
Conn = psycopg.AsyncConnection[tuple[Any, ...]]


class PgServer(Protocol):
    """What the runner needs of a server (``tests/pg/pgharness.Server`` fits)."""

    node_id: int
    port: int

    @property
    def dir(self) -> Path: ...

    def start(self) -> None: ...

    def stop(self, mode: str = ...) -> None: ...

    def is_up(self) -> bool: ...


async def connect(server: PgServer, timeout_ms: int) -> Conn:
    """An autocommit connection over the server's Unix socket."""
    conn: Conn = await psycopg.AsyncConnection.connect(
        host=str(server.dir),
        port=server.port,
        user="postgres",
        dbname="postgres",
        autocommit=True,
        connect_timeout=2,
        options=f"-c statement_timeout={timeout_ms}",
    )
    return conn


def classify(exc: psycopg.Error) -> Outcome:
    """``fail`` when the server says nothing was proposed, else ``info``."""
    if exc.sqlstate in DEFINITE_SQLSTATES:
        return Outcome.FAIL
    detail = exc.diag.message_detail or ""
    if exc.sqlstate == "08006" and any(sign in detail for sign in NOT_CONNECTED):
        return Outcome.FAIL
    return Outcome.INFO


def statement(
    kind: OpKind, key: str | None, args: tuple[Scalar, ...]
) -> tuple[str, tuple[Any, ...]]:
    match kind:
        case OpKind.PUT:
            return "SELECT pgraft_kv_put(%s, %s)", (key, args[0])
        case OpKind.GET:
            return "SELECT pgraft_kv_get(%s)", (key,)
        case OpKind.CAS:
            return "SELECT pgraft_kv_cas(%s, %s, %s)", (key, args[0], args[1])
        case OpKind.APPEND:
            return "SELECT pgraft_log_append(0, %s)", (args[0],)
        case _:
            raise ValueError(f"no SQL for {kind}")


class Sessions:
    """One client's connections, one per server, dropped when they break."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        self._conns: dict[int, Conn] = {}

    async def get(self, server: PgServer) -> Conn:
        conn = self._conns.get(server.node_id)
        if conn is None or conn.closed:
            conn = await asyncio.wait_for(connect(server, self.timeout_ms), 5.0)
            self._conns[server.node_id] = conn
        return conn

    async def drop(self, server: PgServer) -> None:
        conn = self._conns.pop(server.node_id, None)
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.close(), 2.0)

    async def close(self) -> None:
        for node_id in list(self._conns):
            conn = self._conns.pop(node_id)
            with contextlib.suppress(psycopg.Error, OSError, TimeoutError):
                await asyncio.wait_for(conn.close(), 2.0)


async def call(sessions: Sessions, server: PgServer, sql: str, params: tuple[Any, ...]) -> Any:
    """Run one single-value statement; first column of the row. Raises psycopg errors,
    ``TimeoutError`` (the connection is then dropped) and ``ConnectionError`` when no
    connection could be opened (nothing was sent)."""
    try:
        conn = await sessions.get(server)
    except (psycopg.Error, OSError, TimeoutError) as exc:
        raise ConnectionError(f"connect to server {server.node_id}: {exc}") from exc
    try:
        async with asyncio.timeout(sessions.timeout_ms / 1000 + 3.0):
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
    except (psycopg.OperationalError, TimeoutError, OSError):
        await sessions.drop(server)
        raise
    return None if row is None else row[0]


class SqlWorkload:
    def __init__(
        self,
        servers: list[PgServer],
        history: History,
        rng: random.Random,
        config: WorkloadConfig,
    ) -> None:
        self.servers = servers
        self.history = history
        self.rng = rng
        self.config = config
        self._processes = itertools.count(1)
        self._key_names = itertools.count()
        self._keys = [f"k{next(self._key_names)}" for _ in range(config.active_keys)]
        self._key_ops: dict[str, int] = {}
        self._seen: dict[str, str | None] = {}
        self._payloads = itertools.count()
        self.refused_cas = 0  # recorded as ``info``: see the module docstring

    def _pick_key(self) -> str:
        slot = self.rng.randrange(len(self._keys))
        key = self._keys[slot]
        self._key_ops[key] = self._key_ops.get(key, 0) + 1
        if self._key_ops[key] >= self.config.ops_per_key:
            self._keys[slot] = f"k{next(self._key_names)}"
        return key

    async def run(self, stop: asyncio.Event) -> None:
        clients = [self._client(stop, kv=True) for _ in range(self.config.kv_clients)]
        clients += [self._client(stop, kv=False) for _ in range(self.config.append_clients)]
        await asyncio.gather(*clients)

    async def _client(self, stop: asyncio.Event, kv: bool) -> None:
        sessions = Sessions(int(self.config.op_timeout_s * 1000))
        process = next(self._processes)
        try:
            while not stop.is_set():
                key: str | None = None
                if kv:
                    key = self._pick_key()
                    kind, args = self._kv_op(process, key)
                else:
                    kind, args = OpKind.APPEND, (f"p{process}.{next(self._payloads)}",)
                if await self._perform(sessions, process, kind, key, args) is Outcome.INFO:
                    process = next(self._processes)
                await asyncio.sleep(self.rng.random() * 2 * self.config.pause_s)
        finally:
            await sessions.close()

    def _kv_op(self, process: int, key: str) -> tuple[OpKind, tuple[Scalar, ...]]:
        roll = self.rng.random()
        value = f"v{process}.{len(self.history)}"
        if roll < 0.35:
            return OpKind.PUT, (value,)
        if roll < 0.75:
            return OpKind.GET, ()
        return OpKind.CAS, (self._seen.get(key), value)

    async def _perform(
        self,
        sessions: Sessions,
        process: int,
        kind: OpKind,
        key: str | None,
        args: tuple[Scalar, ...],
    ) -> Outcome:
        server = self.rng.choice(self.servers)
        op_id = self.history.invoke(process, kind, key, args, server.node_id)
        sql, params = statement(kind, key, args)
        try:
            reply = await call(sessions, server, sql, params)
        except ConnectionError as exc:
            self.history.complete(op_id, Outcome.FAIL, error=str(exc))
            return Outcome.FAIL
        except psycopg.Error as exc:
            outcome = classify(exc)
            self.history.complete(op_id, outcome, error=f"{exc.sqlstate or '-'}: {exc}")
            return outcome
        except (TimeoutError, OSError) as exc:
            self.history.complete(op_id, Outcome.INFO, error=repr(exc))
            return Outcome.INFO
        result: Value
        match kind:
            case OpKind.PUT:
                result = None
            case OpKind.GET:
                result = reply if isinstance(reply, str) else None
            case OpKind.CAS:
                if reply is not True:
                    self.refused_cas += 1
                    self.history.complete(op_id, Outcome.INFO, error="cas not applied")
                    return Outcome.FAIL  # over for sure: the process need not change
                result = (True, args[1])
            case _:
                result = int(reply)
        self.history.complete(op_id, Outcome.OK, result)
        if key is not None and kind is not OpKind.PUT:
            seen = args[1] if kind is OpKind.CAS else result
            self._seen[key] = seen if isinstance(seen, str) else None
        return Outcome.OK


@dataclass
class SqlProber(ProbeLog):
    """Puts a probe key through a random server every ``period_s``, remembering when
    each acknowledged write was invoked and acknowledged."""

    servers: list[PgServer]
    rng: random.Random
    period_s: float = 0.05

    async def run(self, stop: asyncio.Event) -> None:
        sessions = Sessions(1000)
        try:
            while not stop.is_set():
                self.attempts += 1
                begun = time.monotonic()
                server = self.rng.choice(self.servers)
                sql = "SELECT pgraft_kv_put('chaos-probe', %s)"
                with contextlib.suppress(psycopg.Error, ConnectionError, TimeoutError, OSError):
                    await call(sessions, server, sql, (str(self.attempts),))
                    self.acks.append((begun, time.monotonic()))
                await asyncio.sleep(self.period_s)
        finally:
            await sessions.close()
