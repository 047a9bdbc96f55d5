"""``python -m pgraft.bench pg``: replicated appends through PostgreSQL, measured by pgbench.

Theory of operation
-------------------
The benchmark starts its own servers (``initdb``/``pg_ctl`` as the ``postgres`` OS
user, under /var/tmp, Unix sockets only, ``fsync = on``, ``synchronous_commit = on``,
``shared_preload_libraries = 'pgraft'``), forms a Raft cluster of them through SQL
(``pgraft_init`` everywhere, ``pgraft_add_node`` from the first), and finds the leader.
On the leader it runs pgbench with a one-statement script, ``SELECT
pgraft_log_append(0, <64 bytes>)``, for each client count, and then, as the yardstick
on the same server, a plain durable ``INSERT`` of the same 64 bytes into a table. An
append returns only when the entry is committed by a quorum and fsynced by the nodes'
storage, so the two numbers compare "durable in one place" with "durable in a
quorum". The disk's ``fsync_floor`` (``fdatasync`` of a small write, measured in the
same directory first) bounds both from below. pgbench's own figures (tps, average
latency) and the p50/p99 latency from its per-transaction log are reported as JSON on
stdout; progress goes to stderr. Everything is stopped and removed at the end
(``--keep`` leaves the directory for inspection).

Needs root (servers run as ``postgres``), the extension installed (``make -C
extension install``) and the node's interpreter (scripts/install-node-venv.sh).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pgraft.bench.cluster import fsync_floor

T = TypeVar("T")
PAYLOAD = "x" * 64
APPEND_SQL = f"SELECT pgraft_log_append(0, '{PAYLOAD}');\n"
INSERT_SQL = f"INSERT INTO bench_plain(data) VALUES ('{PAYLOAD}');\n"
_TPS_RE = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
_LAT_RE = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
_FAILED_RE = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)
_XACTS_RE = re.compile(r"^number of transactions actually processed: (\d+)", re.MULTILINE)


class BenchError(Exception):
    """The benchmark could not run; the message says why."""


def bindir() -> Path:
    """PostgreSQL's bin directory: pg_config's, else the highest installed major."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and Path(out.stdout.strip(), "pgbench").exists():
            return Path(out.stdout.strip())
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), key=lambda p: p.parts[-3])
    if not found:
        raise BenchError("no PostgreSQL with pgbench found (pg_config, /usr/lib/postgresql)")
    return found[-1].parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """One benchmark server: node ``node_id`` in ``base``."""

    base: Path
    node_id: int
    port: int
    raft_port: int
    bin: Path

    @property
    def dir(self) -> Path:
        return self.base / f"node{self.node_id}"

    def _as_postgres(self, *args: str) -> None:
        out = subprocess.run(
            list(args), user="postgres", capture_output=True, text=True, timeout=120, check=False
        )
        if out.returncode != 0:
            raise BenchError(f"{' '.join(args[:2])} failed: {out.stderr.strip()}")

    def create(self, heartbeat_ms: int, election_ms: int, python: str | None = None) -> None:
        self.dir.mkdir()
        shutil.chown(self.dir, "postgres", "postgres")
        data = str(self.dir / "data")
        self._as_postgres(str(self.bin / "initdb"), "-D", data, "-U", "postgres", "-A", "trust")
        settings = {
            "port": str(self.port),
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.dir}'",
            "shared_preload_libraries": "'pgraft'",
            "max_connections": "100",
            "fsync": "on",
            "synchronous_commit": "on",
            "pgraft.node_id": str(self.node_id),
            "pgraft.address": "'127.0.0.1'",
            "pgraft.port": str(self.raft_port),
            "pgraft.cluster_name": "'bench'",
            "pgraft.heartbeat_interval": str(heartbeat_ms),
            "pgraft.election_timeout": str(election_ms),
        }
        if python is not None:
            settings["pgraft.python"] = f"'{python}'"
        with open(Path(data, "postgresql.conf"), "a", encoding="utf-8") as f:
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", data, "-l", str(self.dir / "server.log"), "-w", "start"
        )

    def stop(self) -> None:
        data = str(self.dir / "data")
        if Path(data, "postmaster.pid").exists():
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop")

    def conn_args(self) -> list[str]:
        return ["-h", str(self.dir), "-p", str(self.port), "-U", "postgres"]

    def sql(self, query: str) -> str:
        """Run ``query`` with psql; its unaligned output. Raises BenchError."""
        cmd = [str(self.bin / "psql"), "-X", "-qAt", "-v", "ON_ERROR_STOP=1", *self.conn_args()]
        out = subprocess.run(
            [*cmd, "-d", "postgres", "-c", query],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if out.returncode != 0:
            raise BenchError(f"node {self.node_id}: {query!r}: {out.stderr.strip()}")
        return out.stdout.strip()


def wait_until(what: str, probe: Callable[[], T], timeout: float = 30.0) -> T:
    """Poll ``probe()`` (BenchError counts as "not yet") until truthy; BenchError on timeout."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except BenchError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"timed out waiting for {what}: {last}")


def running(server: Server) -> bool:
    return server.sql("SELECT pgraft_get_worker_state()") == "RUNNING"


def form_cluster(servers: list[Server]) -> Server:
    """The seed's flow through SQL; returns the leader."""
    for s in servers:
        s.sql("CREATE EXTENSION IF NOT EXISTS pgraft")
        wait_until(f"node {s.node_id}", functools.partial(running, s))
        s.sql("SELECT pgraft_init()")
    for s in servers[1:]:
        servers[0].sql(f"SELECT pgraft_add_node({s.node_id}, '127.0.0.1', {s.raft_port})")

    def agreed() -> int:
        leaders = {int(s.sql("SELECT pgraft_get_leader()")) for s in servers}
        return leaders.pop() if len(leaders) == 1 and 0 not in leaders else 0

    leader_id = wait_until("a leader", agreed)
    return next(s for s in servers if s.node_id == leader_id)


def _latency_percentiles(log_dir: Path) -> dict[str, float | None]:
    """p50/p99 (ms) of the per-transaction log pgbench wrote (``-l``): one file per
    thread, the third field of each line is the transaction's latency in µs."""
    lat: list[int] = []
    for path in sorted(log_dir.glob("tx.*")):
        with path.open(encoding="ascii") as f:
            lat.extend(int(line.split()[2]) for line in f if line.strip())
    lat.sort()

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(len(lat) * p / 100))] / 1000, 3) if lat else None

    return {"latency_p50_ms": pct(50), "latency_p99_ms": pct(99)}


def pgbench(server: Server, script: Path, clients: int, seconds: int) -> dict[str, Any]:
    """Run one pgbench measurement; its figures."""
    log_dir = Path(tempfile.mkdtemp(prefix="pgbench-log-", dir=script.parent))
    cmd = [
        str(server.bin / "pgbench"), "-n", "-f", str(script), "-c", str(clients),
        "-j", str(min(clients, 4)), "-T", str(seconds), "-M", "prepared",
        "-l", f"--log-prefix={log_dir / 'tx'}", *server.conn_args(), "postgres",
    ]  # fmt: skip
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        percentiles = _latency_percentiles(log_dir)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    if out.returncode != 0:
        raise BenchError(f"pgbench failed: {out.stderr.strip()[-500:]}")
    tps, lat, xacts = (
        _TPS_RE.search(out.stdout),
        _LAT_RE.search(out.stdout),
        _XACTS_RE.search(out.stdout),
    )
    if tps is None or lat is None or xacts is None:
        raise BenchError(f"cannot parse pgbench output: {out.stdout[-500:]}")
    failed = _FAILED_RE.search(out.stdout)
    return {
        "clients": clients,
        "tps": round(float(tps.group(1)), 1),
        "latency_avg_ms": float(lat.group(1)),
        **percentiles,
        "transactions": int(xacts.group(1)),
        "failed": int(failed.group(1)) if failed else 0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise BenchError("run as root: the servers are started as the postgres OS user")
    pg_bin = bindir()
    base = Path(tempfile.mkdtemp(prefix="pgraft-bench-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    servers: list[Server] = []
    try:
        floor = fsync_floor(base)
        print(f"fsync floor: {floor}", file=sys.stderr)
        for node_id in range(1, args.servers + 1):
            pg_port, raft_port = free_port(), free_port()
            while raft_port == pg_port:
                raft_port = free_port()
            s = Server(base, node_id, pg_port, raft_port, pg_bin)
            print(f"starting server {node_id} on port {pg_port}", file=sys.stderr)
            s.create(args.heartbeat_ms, args.election_ms, args.python)
            servers.append(s)
        leader = form_cluster(servers)
        leader.sql("CREATE TABLE bench_plain(id bigserial PRIMARY KEY, data text)")
        append_script, insert_script = base / "append.sql", base / "insert.sql"
        append_script.write_text(APPEND_SQL)
        insert_script.write_text(INSERT_SQL)
        results: dict[str, Any] = {
            "benchmark": "pg",
            "servers": args.servers,
            "payload_bytes": len(PAYLOAD),
            "seconds_per_run": args.seconds,
            "fsync": True,
            "fsync_floor": floor,
            "heartbeat_ms": args.heartbeat_ms,
            "election_timeout_ms": args.election_ms,
            "pgraft_log_append": [],
            "plain_insert": [],
        }
        for clients in args.clients:
            print(f"pgraft_log_append, {clients} clients", file=sys.stderr)
            results["pgraft_log_append"].append(
                pgbench(leader, append_script, clients, args.seconds)
            )
            print(f"plain INSERT, {clients} clients", file=sys.stderr)
            results["plain_insert"].append(pgbench(leader, insert_script, clients, args.seconds))
        stats = leader.sql("SELECT last_index, commit_index FROM pgraft_log_get_stats()")
        results["leader_log_last_index"] = int(stats.split("|")[0])
        return results
    finally:
        for s in servers:
            try:
                s.stop()
            except BenchError as exc:
                print(f"warning: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def _clients(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not values or min(values) < 1 or max(values) > 90:
        raise argparse.ArgumentTypeError("client counts must be between 1 and 90")
    return values


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgraft.bench pg", description=__doc__)
    parser.add_argument("--servers", type=int, default=3, choices=range(1, 8))
    parser.add_argument("--clients", type=_clients, default=[1, 8, 32])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each pgbench run")
    parser.add_argument("--heartbeat-ms", type=int, default=100)
    parser.add_argument("--election-ms", type=int, default=1000)
    parser.add_argument(
        "--python", help="pgraft.python of the servers (e.g. another build of the node)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers' directory")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 3600:
        parser.error("--seconds must be between 1 and 3600")
    try:
        results = run(args)
    except BenchError as exc:
        print(f"pgraft.bench pg: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2))
    return 0
