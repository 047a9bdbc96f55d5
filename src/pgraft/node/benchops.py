"""Benchmark operations run *inside* a node process (``python -m pgraft.bench cluster``).

Theory of operation
-------------------
To measure the replication path without the control socket in the way, the benchmark
orchestrator starts its node processes with these extra control ops. Each op runs a
whole measurement loop in the node's event loop, proposing through ``Node.propose``
exactly as a control request would (encode, propose, wait for the applied result),
and returns the figures as JSON:

- ``bench_seq``: ``n`` sequential 64-byte log appends (bounded by ``cap_s``),
  latency percentiles and ops/s;
- ``bench_tput``: appends for ``secs`` seconds with at most ``inflight`` outstanding,
  committed ops/s within the window (bounded drain afterwards);
- ``bench_rss``: this process's resident set size.

They exist only in bench mode: ``python -m pgraft.node`` never registers them.
"""

from __future__ import annotations

import asyncio
import time

from pgraft.control.protocol import Args
from pgraft.node.ops import Op, new_request_id
from pgraft.node.runtime import Node
from pgraft.statemachine import commands


def percentile(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    k = (len(sorted_vals) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


async def _append(node: Node, payload: bytes, timeout_s: float) -> None:
    rid = new_request_id()
    fut = node.propose(rid, commands.encode(commands.LogAppend(rid, payload)))
    await asyncio.wait_for(fut, timeout_s)


async def bench_seq(node: Node, args: Args) -> object:
    n = args.integer("n", 1)
    cap_s = args.integer_or("cap_ms", 20_000, 1) / 1000
    payload = b"x" * args.integer_or("size", 64, 0)
    lat: list[float] = []
    errors = 0
    t0 = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        try:
            await _append(node, payload, 5.0)
        except Exception:
            errors += 1
            if errors > 20:
                break
            continue
        now = time.perf_counter()
        lat.append(now - t)
        if now - t0 > cap_s:
            break
    elapsed = time.perf_counter() - t0
    lat.sort()
    ms = [v * 1e3 for v in lat]
    return {
        "n_ok": len(lat),
        "errors": errors,
        "elapsed_s": elapsed,
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": ms[-1] if ms else None,
        "ops_s": len(lat) / elapsed if elapsed > 0 else None,
    }


async def bench_tput(node: Node, args: Args) -> object:
    secs = args.integer("ms", 1) / 1000
    inflight = args.integer("inflight", 1)
    drain_s = args.integer_or("drain_ms", 5000, 0) / 1000
    payload = b"x" * args.integer_or("size", 64, 0)
    slots = asyncio.Semaphore(inflight)
    done = {"ok": 0, "err": 0}
    outstanding: set[asyncio.Future[object]] = set()

    def finished(fut: asyncio.Future[object]) -> None:
        outstanding.discard(fut)
        ok = not fut.cancelled() and fut.exception() is None
        done["ok" if ok else "err"] += 1
        slots.release()

    issued = 0
    t0 = time.perf_counter()
    end = t0 + secs
    while time.perf_counter() < end:
        if slots.locked():  # only yield when the window is full: a batch forms meanwhile
            try:
                await asyncio.wait_for(slots.acquire(), max(0.001, end - time.perf_counter()))
            except TimeoutError:
                break
        else:
            await slots.acquire()  # free: returns without yielding
        rid = new_request_id()
        fut: asyncio.Future[object] = node.propose(
            rid, commands.encode(commands.LogAppend(rid, payload))
        )  # type: ignore[assignment]
        outstanding.add(fut)
        fut.add_done_callback(finished)
        issued += 1
    elapsed = time.perf_counter() - t0
    ok_in_window = done["ok"]
    if outstanding:
        await asyncio.wait(set(outstanding), timeout=drain_s)
    for fut in list(outstanding):
        fut.cancel()
    return {
        "secs": elapsed,
        "inflight": inflight,
        "issued": issued,
        "ok_in_window": ok_in_window,
        "ok_total": done["ok"],
        "errors": done["err"],
        "ops_s": ok_in_window / elapsed if elapsed > 0 else None,
    }


async def bench_rss(node: Node, args: Args) -> object:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


BENCH_OPS: dict[str, Op] = {
    "bench_seq": bench_seq,
    "bench_tput": bench_tput,
    "bench_rss": bench_rss,
}
