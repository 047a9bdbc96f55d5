"""Benchmark: entries per second committed by a 3-node core cluster in one process.

Theory of operation
-------------------
Three ``RawNode`` instances over ``MemoryStorage`` talk through a zero-cost network:
messages from one node's Ready are stepped into their destination at once. Node 1
campaigns and leads. Each round proposes ``--batch`` entries with ``propose_many``
and pumps Readies (persist, send, apply, advance) until the cluster is quiet, so
every entry of the round is committed on the leader before the next round starts.
After a warm-up round the benchmark runs for ``--seconds`` and prints one JSON
object; ``--profile`` prints the hottest functions (cProfile) to stderr instead of
timing. The figure measures the Python core alone: no fsync, no sockets.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import random
import sys
import time
from collections import deque

from pgraft.core.config import Config
from pgraft.core.rawnode import RawNode
from pgraft.core.storage import MemoryStorage
from pgraft.core.types import ConfState, Message, Role

NODES = 3
MAX_PUMP_ROUNDS = 100_000


class Cluster:
    def __init__(self, batch: int) -> None:
        conf = ConfState(voters=frozenset(range(1, NODES + 1)))
        self.storages = {i: MemoryStorage.bootstrap(conf) for i in range(1, NODES + 1)}
        self.nodes = {
            i: RawNode(
                Config(node_id=i, cluster_id=1, max_msg_entries=max(1024, batch)),
                self.storages[i],
                random.Random(i),
            )
            for i in self.storages
        }
        self.inbox: deque[Message] = deque()
        self.applied = 0

    def pump(self) -> None:
        """Handle Readies and deliver messages until nothing is left (bounded)."""
        nodes, inbox = self.nodes, self.inbox
        for _ in range(MAX_PUMP_ROUNDS):
            busy = False
            for node_id, raw in nodes.items():
                if raw.has_ready():
                    busy = True
                    self._handle(node_id, raw)
            while inbox:
                busy = True
                msg = inbox.popleft()
                nodes[msg.to].step(msg)
            if not busy:
                return
        raise RuntimeError("cluster did not quiesce")

    def _handle(self, node_id: int, raw: RawNode) -> None:
        rd = raw.ready()
        storage = self.storages[node_id]
        if rd.snapshot is not None:
            storage.apply_snapshot(rd.snapshot)
        if rd.entries:
            storage.append(rd.entries)
        if rd.hard_state is not None:
            storage.set_hard_state(rd.hard_state)
        self.inbox.extend(rd.messages)
        if node_id == 1 and rd.committed_entries:
            self.applied = rd.committed_entries[-1].index
        raw.advance(rd)

    def elect(self) -> None:
        self.nodes[1].campaign()
        self.pump()
        if self.nodes[1].status().role != Role.LEADER:
            raise RuntimeError("node 1 did not become leader")


def run(seconds: float, batch: int, size: int) -> dict[str, object]:
    cluster = Cluster(batch)
    cluster.elect()
    leader = cluster.nodes[1]
    payload = [bytes(size)] * batch
    leader.propose_many(payload)  # warm-up round
    cluster.pump()
    start_index = cluster.applied
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        leader.propose_many(payload)
        cluster.pump()
    elapsed = time.perf_counter() - start
    entries = cluster.applied - start_index
    return {
        "bench": "core",
        "nodes": NODES,
        "entries_per_s": round(entries / elapsed),
        "entries": entries,
        "seconds": round(elapsed, 3),
        "batch": batch,
        "entry_bytes": size,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m pgraft.bench core", description=__doc__)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--batch", type=int, default=256, help="entries per propose_many")
    p.add_argument("--size", type=int, default=16, help="bytes of data per entry")
    p.add_argument("--profile", action="store_true", help="print a cProfile to stderr")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.batch < 1 or args.size < 0:
        p.error("--seconds and --batch must be positive, --size >= 0")
    if args.profile:
        prof = cProfile.Profile()
        result = prof.runcall(run, args.seconds, args.batch, args.size)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue(), file=sys.stderr)
    else:
        result = run(args.seconds, args.batch, args.size)
    print(json.dumps(result))
    return 0
