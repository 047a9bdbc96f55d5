"""``python -m pgraft.chaos --duration S --seed N``: one fault-injection run.

Prints the human summary, writes the JSON report (``--json PATH``, default stdout
after the summary) and exits 0 when the run passed, 1 when it found a violation, a
lost acknowledgement or a problem. Needs root (network namespaces, tmpfs mounts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from pathlib import Path

from pgraft.chaos.cluster import DEFAULT_LAUNCHER
from pgraft.chaos.faults import ALL_KINDS
from pgraft.chaos.runner import RunConfig, run
from pgraft.chaos.workload import WorkloadConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pgraft.chaos", description=__doc__)
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--faults", default=",".join(ALL_KINDS), help="comma-separated kinds")
    p.add_argument("--clients", type=int, default=4, help="key-value clients")
    p.add_argument("--appenders", type=int, default=2, help="log-append clients")
    p.add_argument("--launcher", default="", help="argv prefix that starts a node")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--json", type=Path, default=None, help="write the JSON report here")
    p.add_argument("--history", type=Path, default=None, help="write the history (JSON lines)")
    args = p.parse_args(argv)
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = set(kinds) - set(ALL_KINDS)
    if unknown:
        p.error(f"unknown fault kinds: {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    config = RunConfig(
        duration_s=args.duration,
        seed=args.seed,
        nodes=args.nodes,
        kinds=kinds,
        launcher=shlex.split(args.launcher) if args.launcher else DEFAULT_LAUNCHER,
        workload=WorkloadConfig(kv_clients=args.clients, append_clients=args.appenders),
        workdir=args.workdir,
        keep=args.keep,
        history_path=args.history,
    )
    report = asyncio.run(run(config))
    print(report.summary())
    if args.json is not None:
        args.json.write_text(report.to_json() + "\n", encoding="utf-8")
    else:
        print(report.to_json())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
