"""Benchmark: 3 node processes on loopback, fsync on, 64-byte log entries.

Theory of operation
-------------------
The orchestrator (default mode) starts three copies of this module in ``--node`` mode:
each is a real node (``NodeApp``: SQLite storage with ``synchronous=FULL``, the TCP
transport, the control socket) with the extra in-process benchmark ops of
``pgraft.node.benchops``. Node 1 initializes the cluster and adds the other two. Then:

(a) sequential commit latency: ``--seq-n`` appends one after another, p50/p99, ops/s;
(b) pipelined throughput for ``--tput-secs`` with 1,000 and 10,000 appends in flight;

both twice: with the client inside the leader process (``bench_seq``/``bench_tput``)
and through the leader's control socket (``log_append`` requests pipelined on one
connection from this process); then, through the socket, 8 clients on their own
connections appending one entry after another (what 8 PostgreSQL backends do);

The disk's floor is measured first (``fsync_floor``: ``fdatasync`` of a small write in
the benchmark's directory, sequentially): a sequential commit cannot be faster than
the leader's fsync running in parallel with a follower's fsync plus a round trip.

(c) failover: on a fresh cluster, SIGKILL the leader and time until a survivor reports
a new leader (polling ``leader`` every 5 ms); median of ``--failover-reps`` with a
150 ms election timeout, and of ``--failover-reps-default`` with the defaults
(heartbeat 1000 ms, election 5000 ms);

``--phase fill`` instead measures (d): throughput on an empty log, then after
appending ``--fill-entries`` (default 1,000,000) with compaction on, and the leader's
RSS. Every loop is bounded by count and time; node processes are started with
``--parent-pid`` and killed by pid at the end. One JSON object goes to stdout;
progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from pgraft.control.client import AsyncControlClient, ControlClient
from pgraft.control.errors import ControlError
from pgraft.control.protocol import encode_request
from pgraft.node.benchops import percentile

PAYLOAD = "x" * 64


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchCluster:
    def __init__(self, root: Path, heartbeat_ms: int, election_ms: int, **extra: Any) -> None:
        self.root = root
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.configs: dict[int, dict[str, Any]] = {}
        for i in (1, 2, 3):
            d = root / f"n{i}"
            d.mkdir(parents=True)
            self.configs[i] = {
                "node_id": i, "cluster_name": "bench", "address": "127.0.0.1",
                "port": _free_port(), "data_dir": str(d), "heartbeat_ms": heartbeat_ms,
                "election_timeout_ms": election_ms, **extra,
            }  # fmt: skip
            path = d / "node.json"
            path.write_text(json.dumps(self.configs[i]))
            with open(d / "node.log", "ab") as log:
                self.procs[i] = subprocess.Popen(
                    [sys.executable, "-m", "pgraft.bench", "cluster", "--node", str(path),
                     "--parent-pid", str(os.getpid())],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
        try:
            for i in (1, 2, 3):
                self.until(lambda i=i: self.call(i, "ping"), 20, f"node {i} to start")
            self.call(1, "init")
            for i in (2, 3):
                port = self.configs[i]["port"]
                self.call(1, "add_node", node_id=i, address="127.0.0.1", port=port)
        except BaseException:
            self.stop()
            raise

    def sock(self, i: int) -> str:
        return str(Path(self.configs[i]["data_dir"]) / "pgraft.sock")

    def call(self, i: int, op: str, timeout: float = 120.0, **args: Any) -> Any:
        with ControlClient(self.sock(i), timeout=timeout) as c:
            return c.call(op, **args)

    @staticmethod
    def until(pred: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = pred()
            except (ControlError, OSError):
                value = None
            if value:
                return value
            time.sleep(0.005)
        raise TimeoutError(f"timed out waiting for {what}")

    def leader(self, among: tuple[int, ...] = (1, 2, 3), timeout: float = 30.0) -> int:
        def agreed() -> int | None:
            ids = {self.call(i, "leader", timeout=5) for i in among}
            return ids.pop() if len(ids) == 1 and 0 not in ids else None

        result: int = self.until(agreed, timeout, "an agreed leader")
        return result

    def kill(self, i: int) -> None:
        proc = self.procs.pop(i, None)
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self) -> None:
        for i in list(self.procs):
            self.kill(i)


async def _socket_seq(path: str, n: int, cap_s: float) -> dict[str, Any]:
    client = await AsyncControlClient.connect(path)
    lat: list[float] = []
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        await client.call("log_append", term=0, data=PAYLOAD)
        lat.append((time.perf_counter() - t) * 1e3)
        if time.perf_counter() - t0 > cap_s:
            break
    elapsed = time.perf_counter() - t0
    await client.close()
    lat.sort()
    return {"n_ok": len(lat), "elapsed_s": elapsed, "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99), "ops_s": len(lat) / elapsed}  # fmt: skip


async def _socket_clients(path: str, clients: int, secs: float) -> dict[str, Any]:
    """``clients`` connections, each appending one entry after another for ``secs`` (as
    that many PostgreSQL backends calling ``pgraft_log_append`` would): ops/s and the
    latency percentiles over all of them."""
    conns = [await AsyncControlClient.connect(path) for _ in range(clients)]
    lat: list[float] = []
    end = time.perf_counter() + secs

    async def one(client: AsyncControlClient) -> None:
        while (t := time.perf_counter()) < end:
            await client.call("log_append", term=0, data=PAYLOAD)
            lat.append((time.perf_counter() - t) * 1e3)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in conns))
    elapsed = time.perf_counter() - t0
    for c in conns:
        await c.close()
    lat.sort()
    return {"clients": clients, "n_ok": len(lat), "ops_s": len(lat) / elapsed,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}  # fmt: skip


async def _socket_tput(path: str, secs: float, inflight: int, drain_s: float) -> dict[str, Any]:
    """Keep ``inflight`` requests outstanding on one connection for ``secs``: a reader
    task counts replies, a writer task refills the window in one write per wake-up."""
    client = await AsyncControlClient.connect(path)
    request = encode_request("log_append", {"term": 0, "data": PAYLOAD})
    st = {"ok": 0, "errors": 0, "in_window": 0, "sent": 0, "free": inflight}
    refill = asyncio.Event()
    refill.set()
    t0 = time.perf_counter()
    end = t0 + secs

    async def writer() -> None:
        while time.perf_counter() < end:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(refill.wait(), max(0.001, end - time.perf_counter()))
            refill.clear()
            n, st["free"] = st["free"], 0
            if n and time.perf_counter() < end:
                await client.send_raw(request * n)
                st["sent"] += n

    async def reader() -> None:
        while st["ok"] + st["errors"] < st["sent"] or time.perf_counter() < end:
            try:
                await client.receive()
                st["ok"] += 1
            except ControlError:
                st["errors"] += 1
            if time.perf_counter() < end:
                st["in_window"] = st["ok"]
            st["free"] += 1
            refill.set()

    w = asyncio.create_task(writer())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(reader(), secs + drain_s)
    w.cancel()
    await asyncio.gather(w, return_exceptions=True)
    await client.close()
    return {"secs": secs, "inflight": inflight, "ok_in_window": st["in_window"],
            "ok_total": st["ok"], "errors": st["errors"],
            "ops_s": st["in_window"] / secs}  # fmt: skip


def fsync_floor(directory: Path, n: int = 100, cap_s: float = 5.0) -> dict[str, Any]:
    """Latency (p50/p99, ms) of ``fdatasync`` after a 4 KiB write in ``directory``:
    rewriting blocks already allocated (a recycled WAL) and appending (a growing one)."""
    out: dict[str, Any] = {}
    for mode in ("overwrite", "append"):
        path = directory / f"fsync-probe-{mode}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        lat: list[float] = []
        try:
            if mode == "overwrite":
                os.pwrite(fd, b"\0" * 4096 * 16, 0)
                os.fsync(fd)
            t0 = time.perf_counter()
            for i in range(n):
                os.pwrite(fd, b"x" * 4096, (i % 16 if mode == "overwrite" else i) * 4096)
                t = time.perf_counter()
                os.fdatasync(fd)
                lat.append((time.perf_counter() - t) * 1e3)
                if time.perf_counter() - t0 > cap_s:
                    break
        finally:
            os.close(fd)
            path.unlink()
        lat.sort()
        out[mode] = {"n": len(lat), "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99)}
    return out


def _run_client(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run a socket client on uvloop when installed (as the node does), so that the
    client's own event loop is not what limits the socket figures."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: dict[str, Any] = uvloop.run(coro)
    return result


def _throughput(c: BenchCluster, lead: int, a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ms = int(a.tput_secs * 1000)
    seq = c.call(lead, "bench_seq", n=a.seq_n, cap_ms=int(a.seq_cap * 1000))
    out["in_process"] = {"seq": seq}
    _say(f"(a) in-process: p50 {seq['p50_ms']:.2f} ms p99 {seq['p99_ms']:.2f} ms "
         f"{seq['ops_s']:.0f} ops/s")  # fmt: skip
    for k in (1000, 10000):
        r = c.call(lead, "bench_tput", ms=ms, inflight=k, drain_ms=int(a.drain * 1000))
        out["in_process"][f"tput_{k}"] = r
        _say(f"(b) in-process, {k} in flight: {r['ops_s']:.0f} ops/s")
    sock = c.sock(lead)
    seq = _run_client(_socket_seq(sock, a.seq_n, a.seq_cap))
    out["socket"] = {"seq": seq}
    _say(f"(a) socket: p50 {seq['p50_ms']:.2f} ms p99 {seq['p99_ms']:.2f} ms "
         f"{seq['ops_s']:.0f} ops/s")  # fmt: skip
    for k in (1000, 10000):
        r = _run_client(_socket_tput(sock, a.tput_secs, k, a.drain))
        out["socket"][f"tput_{k}"] = r
        _say(f"(b) socket, {k} in flight: {r['ops_s']:.0f} ops/s")
    r = _run_client(_socket_clients(sock, 8, a.tput_secs))
    out["socket"]["clients_8"] = r
    _say(f"socket, 8 sequential clients: {r['ops_s']:.0f} ops/s, p50 {r['p50_ms']:.2f} ms")
    return out


def _one_failover(c: BenchCluster, el: int) -> float:
    """SIGKILL the leader; milliseconds until a survivor names another leader."""
    old = c.leader()
    time.sleep(0.5)  # steady state: heartbeats flowing
    survivors = tuple(i for i in (1, 2, 3) if i != old)
    t0 = time.monotonic()
    c.kill(old)

    def new_leader() -> bool:
        return any(c.call(i, "leader", timeout=2) not in (0, old) for i in survivors)

    c.until(new_leader, 20 * el / 1000 + 10, "a new leader")
    return (time.monotonic() - t0) * 1e3


def _failover(root: Path, hb: int, el: int, reps: int) -> dict[str, Any]:
    samples: list[float] = []
    for rep in range(reps):
        c = BenchCluster(root / f"fo-{el}-{rep}", hb, el)
        try:
            samples.append(_one_failover(c, el))
            _say(f"(c) election {el} ms, rep {rep}: new leader after {samples[-1]:.0f} ms")
        finally:
            c.stop()
    return {"heartbeat_ms": hb, "election_timeout_ms": el, "samples_ms": samples,
            "median_ms": statistics.median(samples) if samples else None}  # fmt: skip


def _fill(root: Path, a: argparse.Namespace) -> dict[str, Any]:
    c = BenchCluster(root / "fill", 50, 500, snapshot_threshold=10000, log_retention=5000)
    try:
        lead = c.leader()
        ms = int(a.tput_secs * 1000)
        empty = c.call(lead, "bench_tput", ms=ms, inflight=1000)
        rss_empty = c.call(lead, "bench_rss")
        _say(f"(d) empty: {empty['ops_s']:.0f} ops/s, RSS {rss_empty / 2**20:.1f} MiB")
        t0 = time.monotonic()
        filled = 0
        while filled < a.fill_entries and time.monotonic() - t0 < a.fill_cap:
            r = c.call(lead, "bench_tput", ms=5000, inflight=10000, drain_ms=10000)
            filled += r["ok_total"]
            _say(f"(d) filled {filled} entries")
        full = c.call(lead, "bench_tput", ms=ms, inflight=1000)
        rss_full = c.call(lead, "bench_rss")
        stats = c.call(lead, "log_stats")
        _say(f"(d) full: {full['ops_s']:.0f} ops/s, RSS {rss_full / 2**20:.1f} MiB")
        return {"entries": filled, "fill_s": time.monotonic() - t0, "empty": empty,
                "full": full, "rss_empty_bytes": rss_empty, "rss_full_bytes": rss_full,
                "throughput_ratio": full["ops_s"] / empty["ops_s"],
                "log_stats": stats}  # fmt: skip
    finally:
        c.stop()


def _node_main(config_path: str, parent_pid: int | None) -> int:
    from pgraft.node.__main__ import run_app
    from pgraft.node.benchops import BENCH_OPS

    return run_app(config_path, parent_pid, BENCH_OPS)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pgraft.bench cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--node", help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=("main", "fill"), default="main")
    p.add_argument("--seq-n", type=int, default=2000)
    p.add_argument("--seq-cap", type=float, default=10.0, help="time cap of (a), seconds")
    p.add_argument("--tput-secs", type=float, default=5.0)
    p.add_argument("--drain", type=float, default=5.0)
    p.add_argument("--failover-reps", type=int, default=5)
    p.add_argument("--failover-reps-default", type=int, default=3)
    p.add_argument("--fill-entries", type=int, default=1_000_000)
    p.add_argument("--fill-cap", type=float, default=900.0, help="time cap of the fill, s")
    a = p.parse_args(argv)
    if a.node:
        return _node_main(a.node, a.parent_pid)
    result: dict[str, Any] = {
        "env": {"python": platform.python_version(), "cpus": os.cpu_count(),
                "kernel": platform.release(), "fsync": True, "entry_bytes": len(PAYLOAD)},
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="pgraft-bench-", dir="/tmp") as tmp:
        root = Path(tmp)
        if a.phase == "fill":
            result["fill"] = _fill(root, a)
        else:
            result["fsync_floor"] = fsync_floor(root)
            _say(f"fsync floor: {result['fsync_floor']}")
            c = BenchCluster(root / "main", 50, 500)
            try:
                result["throughput"] = _throughput(c, c.leader(), a)
            finally:
                c.stop()
            result["failover"] = {
                "fast": _failover(root, 30, 150, a.failover_reps),
                "defaults": _failover(root, 1000, 5000, a.failover_reps_default),
            }
    print(json.dumps(result, indent=1))
    return 0
