"""Command line: ``python -m pgraft.sim --seeds N --steps M [--seed S] [--first K] [--jobs J]``.

Runs seeds ``K .. K+N-1`` (or the single seed ``S``), prints one summary line and, for
each failing seed, its report (seed, replay command, error, recent events). Exit
status 0 when every seed passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .mixes import MIXES
from .runner import run_seed, run_seeds, summarize


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pgraft.sim", description=__doc__)
    p.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    p.add_argument("--steps", type=int, default=2000, help="steps per seed")
    p.add_argument("--first", type=int, default=0, help="first seed of the range")
    p.add_argument("--seed", type=int, default=None, help="run only this seed (replay)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.add_argument("--mix", choices=sorted(MIXES), default="default", help="fault mix")
    p.add_argument("--trace", type=int, default=300, help="events kept for a failure report")
    p.add_argument("--show-trace", action="store_true", help="print the trace of --seed")
    p.add_argument("--reports", type=int, default=3, help="failure reports printed in full")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.steps < 1 or args.jobs < 1:
        p.error("--seeds, --steps and --jobs must be >= 1")
    mix = MIXES[args.mix]

    if args.seed is not None:
        seeds = [args.seed]
    else:
        seeds = list(range(args.first, args.first + args.seeds))
    start = time.monotonic()
    results = run_seeds(seeds, args.steps, mix, args.jobs, args.trace)
    elapsed = time.monotonic() - start
    if args.show_trace and args.seed is not None and results[0].ok:
        print(run_seed(args.seed, args.steps, mix, args.trace, report_always=True).report)
    failures = [r for r in results if not r.ok]
    for r in failures[: args.reports]:
        print(r.report, file=sys.stderr)
    if len(failures) > args.reports:
        rest = ", ".join(f"{r.seed} ({r.kind})" for r in failures[args.reports :])
        print(f"further failing seeds: {rest}", file=sys.stderr)
    summary = {
        "mix": mix.name,
        "seeds": len(results),
        "steps": args.steps,
        "failures": len(failures),
        "failing_seeds": [r.seed for r in failures],
        "seconds": round(elapsed, 1),
        **summarize(results),
    }
    print(json.dumps(summary))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
