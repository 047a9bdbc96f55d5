"""Write benchmark of ``DurableStorage``: ``python -m pgraft.storage.bench``.

Each round persists one Ready (entries + hard state, one fsynced transaction), the
way the node does, for a fixed wall-clock budget per scenario; it prints one JSON
object: Readies per second, entries per second and fsync-inclusive latency
percentiles for each batch size. Use ``--dir`` to measure a particular file system
(the default is a temporary directory, removed afterwards).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from pgraft.core.types import Entry, HardState
from pgraft.statemachine import StateMachine, commands
from pgraft.storage.durable import DurableStorage

MAX_ROUNDS = 1_000_000


def run_scenario(
    directory: Path, per_ready: int, entry_bytes: int, seconds: float, apply: bool
) -> dict[str, object]:
    """Persist Readies of ``per_ready`` entries for ``seconds``; with ``apply`` the
    state machine applies each Ready's entries in the same transaction."""
    with DurableStorage.open(directory, node_id=1, cluster_name="bench") as st:
        sm = StateMachine(st)
        body = b"x" * max(0, entry_bytes - 40)
        latencies: list[float] = []
        started = time.perf_counter()
        deadline = started + seconds
        index = st.last_index()
        for _ in range(MAX_ROUNDS):
            now = time.perf_counter()
            if now >= deadline:
                break
            entries = [
                Entry(
                    1, i, data=commands.encode(commands.LogAppend(commands.new_request_id(), body))
                )
                for i in range(index + 1, index + per_ready + 1)
            ]
            index += per_ready
            batch = sm.batch(entries) if apply else None
            st.save_ready(entries, HardState(1, 1, index), None, applied_updates=batch)
            latencies.append(time.perf_counter() - now)
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    return {
        "entries_per_ready": per_ready,
        "apply_in_same_txn": apply,
        "readies": len(latencies),
        "readies_per_s": round(len(latencies) / elapsed, 1),
        "entries_per_s": round(len(latencies) * per_ready / elapsed, 1),
        "latency_ms_p50": round(q[49] * 1000, 3),
        "latency_ms_p99": round(q[98] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per scenario")
    parser.add_argument("--entry-bytes", type=int, default=128)
    parser.add_argument("--dir", type=Path, default=None, help="parent directory for the files")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="pgraft-bench-") as tmp:
        for n, (per_ready, apply) in enumerate([(1, False), (100, False), (1, True), (100, True)]):
            results.append(
                run_scenario(Path(tmp) / str(n), per_ready, args.entry_bytes, args.seconds, apply)
            )
    print(
        json.dumps(
            {
                "benchmark": "pgraft.storage write path (SQLite WAL, synchronous=FULL)",
                "entry_bytes": args.entry_bytes,
                "fsync": True,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
