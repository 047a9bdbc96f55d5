"""The chaos run through SQL: three PostgreSQL servers running pgraft, under faults.

``python -m pgraft.chaos.sqlrun --duration S --seed N`` (root; PostgreSQL installed;
run from the source tree: it installs the extension and the node venv first).

Theory of operation
-------------------
The bare-node run (``pgraft.chaos.runner``) drives five ``pgraft.node`` processes
through their control sockets. This variant drives the product the way a user does:
three real PostgreSQL servers, each with ``shared_preload_libraries = pgraft`` whose
background worker supervises the Python node, and every client operation is a SQL
function call over psycopg (``pgraft.chaos.sqlwork``). Server management is the test
harness's (``tests/pg/pgharness.py``: initdb and ``pg_ctl`` as the ``postgres`` OS user,
heartbeat 100 ms, election timeout 1000 ms); the CLI loads it from the source tree, the
pytest test passes its own servers in.

The nemesis alternates calm and one fault at a time, chosen from a seeded
``random.Random``, with the target the current leader half of the time:

* ``pgstop`` -- ``pg_ctl stop -m immediate`` of a server (postmaster, backends, the
  supervisor and its node all go), held for a while, then ``pg_ctl start``;
* ``kill``   -- SIGKILL of the server's Python node process; the extension's supervisor
  restarts it;
* ``pause``  -- SIGSTOP of the Python node for 1.5-3 election timeouts, then SIGCONT.

Network partitions are not injected here: putting PostgreSQL servers in network
namespaces needs more machinery than this variant carries; the bare-node run covers
them. After each heal the probe writes time the recovery, as in the bare-node run.

At the end every server is started, the run waits (bounded) until all three answer
``pgraft_log_get_stats()`` with the same applied index, reads every log back with
``pgraft_log_read``, runs the same checkers and builds the same report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgraft.chaos.faults import FaultRecord
from pgraft.chaos.history import History
from pgraft.chaos.linearizability import check
from pgraft.chaos.logcheck import LogEntry, NodeLog, check_log
from pgraft.chaos.report import Report, build_report
from pgraft.chaos.sqlwork import PgServer, Sessions, SqlProber, SqlWorkload, call
from pgraft.chaos.workload import WorkloadConfig

KINDS = ("pgstop", "kill", "pause")
ELECTION_S = 1.0
RECOVERY_LIMIT_S = 60.0
SETTLE_LIMIT_S = 90.0
READ_PAGE = 1000
QUERY_ERRORS = (psycopg.Error, ConnectionError, TimeoutError, OSError)


@dataclass
class SqlNemesis:
    servers: list[PgServer]
    rng: random.Random
    prober: SqlProber
    hold_s: tuple[float, float] = (1.0, 4.0)
    calm_s: tuple[float, float] = (0.5, 2.0)
    records: list[FaultRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sessions: Sessions = field(default_factory=lambda: Sessions(3000))

    async def query(self, server: PgServer, sql: str) -> Any:
        return await call(self.sessions, server, sql, ())

    async def leader(self) -> int:
        """The leader some live server reports (0: none known)."""
        for server in self.servers:
            if server.is_up():
                with contextlib.suppress(*QUERY_ERRORS):
                    return int(await self.query(server, "SELECT pgraft_get_leader()"))
        return 0

    async def node_pid(self, server: PgServer) -> int:
        """The pid of the server's node process, waiting (bounded) while the supervisor
        restarts it. LookupError if there is none."""
        for _ in range(50):
            pid = await self.query(server, "SELECT pid FROM pgraft_get_worker_info()")
            if isinstance(pid, int):
                return pid
            await asyncio.sleep(0.2)
        raise LookupError(f"server {server.node_id} has no node process")

    async def target(self) -> PgServer:
        leader = await self.leader() if self.rng.random() < 0.5 else 0
        chosen = [s for s in self.servers if s.node_id == leader]
        return chosen[0] if chosen else self.rng.choice(self.servers)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.calm_s))
                    break
                await self.one(self.rng.choice(KINDS))
        finally:
            await self.sessions.close()

    async def one(self, kind: str) -> None:
        server = await self.target()
        record = FaultRecord(kind, [server.node_id], time.monotonic())
        try:
            if kind == "pgstop":
                await asyncio.to_thread(server.stop, "immediate")
                await self.sessions.drop(server)
                await asyncio.sleep(self.rng.uniform(*self.hold_s))
                await asyncio.to_thread(server.start)
            else:
                pid = await self.node_pid(server)
                record.note = f"pid {pid}"
                if kind == "kill":
                    os.kill(pid, signal.SIGKILL)
                else:
                    os.kill(pid, signal.SIGSTOP)
                    try:
                        await asyncio.sleep(self.rng.uniform(1.5, 3.0) * ELECTION_S)
                    finally:
                        os.kill(pid, signal.SIGCONT)
        except (*QUERY_ERRORS, LookupError, subprocess.SubprocessError) as exc:
            record.note = f"not applied: {exc!r}"
        record.healed = time.monotonic()
        record.recovery_s = await self.prober.ack_after(record.healed, RECOVERY_LIMIT_S)
        end = record.healed + (record.recovery_s or RECOVERY_LIMIT_S)
        record.outage_s = self.prober.longest_gap(record.started, end)
        if record.recovery_s is None:
            self.problems.append(f"{kind} of node {server.node_id}: no write acknowledged")
        self.records.append(record)

    async def revive(self) -> None:
        """Start every server that is down (a failed start is a problem)."""
        for server in self.servers:
            if not server.is_up():
                try:
                    await asyncio.to_thread(server.start)
                except subprocess.SubprocessError as exc:
                    self.problems.append(f"server {server.node_id} did not start: {exc!r}")


async def settle(servers: Sequence[PgServer]) -> str:
    """Wait until every server reports the same applied index; "" or what was seen."""
    sessions = Sessions(3000)
    deadline = time.monotonic() + SETTLE_LIMIT_S
    seen: dict[int, object] = {}
    try:
        while time.monotonic() < deadline:
            for server in servers:
                try:
                    sql = "SELECT last_applied FROM pgraft_log_get_stats()"
                    seen[server.node_id] = int(await call(sessions, server, sql, ()))
                except QUERY_ERRORS as exc:
                    seen[server.node_id] = repr(exc)
            values = set(seen.values())
            if len(values) == 1 and all(isinstance(v, int) for v in values):
                return ""
            await asyncio.sleep(0.5)
    finally:
        await sessions.close()
    return f"servers did not converge in {SETTLE_LIMIT_S:.0f} s: {seen}"


async def read_logs(servers: Sequence[PgServer]) -> list[NodeLog]:
    """Every server's user log up to its applied index, read in pages over SQL."""
    logs = []
    for server in servers:
        try:
            logs.append(await _read_log(server))
        except (psycopg.Error, OSError):
            continue
    return logs


async def _read_log(server: PgServer) -> NodeLog:
    conn = await psycopg.AsyncConnection.connect(
        host=str(server.dir), port=server.port, user="postgres", dbname="postgres",
        autocommit=True, connect_timeout=5,
    )  # fmt: skip
    async with conn:
        stats = await conn.execute("SELECT last_applied, first_index FROM pgraft_log_get_stats()")
        row = await stats.fetchone()
        assert row is not None
        applied, first = int(row[0]), max(int(row[1]), 1)
        entries: list[LogEntry] = []
        lo = first
        while lo <= applied:
            cur = await conn.execute(
                "SELECT index, term, data FROM pgraft_log_read(%s, %s, %s)",
                (lo, applied, READ_PAGE),
            )
            page = await cur.fetchall()
            if not page:
                break
            entries += [LogEntry(int(i), int(t), str(d)) for i, t, d in page]
            lo = entries[-1].index + 1  # a short page may only mean the size cap
    return NodeLog(server.node_id, tuple(entries), applied, first)


async def run(
    servers: Sequence[PgServer],
    *,
    duration_s: float,
    seed: int,
    workload: WorkloadConfig | None = None,
    check_budget_s: float = 120.0,
) -> Report:
    """One run against ``servers`` (a formed cluster, all up); they are left running."""
    servers = list(servers)
    history = History()
    rng = random.Random(seed)
    clients = SqlWorkload(servers, history, random.Random(seed + 2), workload or WorkloadConfig())
    prober = SqlProber(servers, random.Random(seed + 1))
    nemesis = SqlNemesis(servers, rng, prober)
    stop_faults, stop_work = asyncio.Event(), asyncio.Event()
    started = time.monotonic()
    work = [
        asyncio.create_task(clients.run(stop_work)),
        asyncio.create_task(prober.run(stop_work)),
    ]
    faults = asyncio.create_task(nemesis.run(stop_faults))
    try:
        await asyncio.sleep(duration_s)
        stop_faults.set()
        await asyncio.wait_for(faults, timeout=RECOVERY_LIMIT_S + 60.0)
    finally:
        stop_faults.set()
        stop_work.set()
        await asyncio.wait_for(asyncio.gather(*work, faults, return_exceptions=True), 60.0)
    elapsed = time.monotonic() - started
    await nemesis.revive()
    settled = await settle(servers)
    logs = await read_logs(servers)
    if len(logs) != len(servers):
        nemesis.problems.append(f"read back {len(logs)} of {len(servers)} logs")
    ops = history.ops()
    checked = time.monotonic()
    lin = check(ops, time_budget_s=check_budget_s)
    report = build_report(
        seed=seed,
        duration_s=elapsed,
        nodes=len(servers),
        partitions="none (SQL variant: PostgreSQL servers are not in network namespaces)",
        ops=ops,
        faults=nemesis.records,
        probes=(prober.attempts, len(prober.acks)),
        disk_stops=[],
        problems=[*nemesis.problems, *([settled] if settled else [])],
        lin=lin,
        log=check_log(ops, logs),
        check_s=time.monotonic() - checked,
    )
    return Report({**report.data, "refused_cas": clients.refused_cas})


def summary(report: Report) -> str:
    """The shared summary plus this variant's note on refused compare-and-sets."""
    note = (
        f"(of the indeterminate operations, {report.data['refused_cas']} are compare-and-sets"
        " that returned false: pgraft_kv_cas does not return the value it found)"
    )
    head, _, verdict = report.summary().rpartition("\n")
    return f"{head}\n{note}\n{verdict}"


def load_harness(repo: Path) -> Any:
    """``tests/pg/pgharness.py`` of the source tree, as a module."""
    path = repo / "tests" / "pg" / "pgharness.py"
    spec = importlib.util.spec_from_file_location("pgharness", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pgraft.chaos.sqlrun", description=__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="write the JSON report here")
    args = p.parse_args(argv)
    repo = Path(__file__).resolve().parents[3]
    for cmd in (
        ["make", "-s", "-C", str(repo / "extension"), "install"],
        [str(repo / "scripts" / "install-node-venv.sh")],
    ):
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    harness = load_harness(repo)
    cluster = harness.Cluster("sqlchaos")
    try:
        servers = harness.three(cluster)
        report = asyncio.run(run(servers, duration_s=args.duration, seed=args.seed))
    finally:
        cluster.close()
    print(summary(report))
    if args.json is not None:
        args.json.write_text(report.to_json() + "\n", encoding="utf-8")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
