"""Running many seeds (optionally in worker processes) and reporting failures.

Theory of operation
-------------------
``run_seed`` builds a ``World`` for one seed and runs it; it never raises: a
``Violation`` or any unexpected exception from the core becomes a failed
``SeedResult`` whose ``report`` holds the seed, the exact command that replays it,
the error and the trace of the last events. ``run_seeds`` spreads seeds over worker
processes (each worker runs whole seeds, so results do not depend on ``jobs``) and
returns the results in seed order.
"""

from __future__ import annotations

import sys
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from .checker import Violation
from .mixes import MIXES, Mix
from .world import World


@dataclass
class SeedResult:
    seed: int
    ok: bool
    kind: str = ""
    report: str = ""
    stats: dict[str, int] = field(default_factory=dict)


def replay_command(seed: int, steps: int, mix: Mix) -> str:
    return f"{sys.executable} -m pgraft.sim --seed {seed} --steps {steps} --mix {mix.name}"


def run_seed(
    seed: int, steps: int, mix: Mix, trace_len: int = 300, report_always: bool = False
) -> SeedResult:
    """Run one seed. With ``report_always`` a passing seed's report holds its trace too."""
    world = World(seed, mix, trace_len)
    try:
        world.run(steps)
    except Violation as exc:
        return _failure(world, seed, steps, mix, exc.kind, str(exc))
    except Exception as exc:  # a crash inside the core is a finding, reported the same way
        detail = "".join(traceback.format_exception(exc)).rstrip()
        return _failure(world, seed, steps, mix, "exception", detail)
    report = ""
    if report_always:
        report = "\n".join([f"seed {seed} passed; last events:", *world.trace.lines()])
    return SeedResult(seed, True, report=report, stats=_stats(world))


def _failure(world: World, seed: int, steps: int, mix: Mix, kind: str, error: str) -> SeedResult:
    lines = [
        f"SIMULATION FAILURE seed={seed} step={world.trace.step} mix={mix.name}",
        f"  {error}",
        f"replay: {replay_command(seed, steps, mix)}",
        f"last {len(world.trace.lines())} events (step, node, event, detail):",
        *("  " + line[:400] for line in world.trace.lines()),
        f"SIMULATION FAILURE seed={seed}: {kind}",
    ]
    return SeedResult(seed, False, kind, "\n".join(lines), _stats(world))


def _stats(world: World) -> dict[str, int]:
    check = world.check
    return {
        "steps_run": world.trace.step + 1,
        "ticks": world.clock,
        "terms_with_leader": len(check.leaders),
        "committed": check.max_commit,
        "reads": check.reads_done,
        "crashes": world.crashes,
        "conf_changes": world.conf_changes,
        "messages": world.net.sent,
        "snapshots_sent": world.net.kinds.get("InstallSnapshot", 0),
        "transfers_sent": world.net.kinds.get("TimeoutNow", 0),
        "forwarded": world.net.kinds.get("Propose", 0),
        "dropped": world.net.dropped,
        "liveness_max_ticks": max(world.liveness_ticks, default=0),
    }


def _run_chunk(args: tuple[list[int], int, str, int]) -> list[SeedResult]:
    seeds, steps, mix_name, trace_len = args
    mix = MIXES[mix_name]
    return [run_seed(s, steps, mix, trace_len) for s in seeds]


def run_seeds(
    seeds: list[int], steps: int, mix: Mix, jobs: int = 1, trace_len: int = 300
) -> list[SeedResult]:
    """Run every seed; with ``jobs > 1`` in that many worker processes (named mixes only)."""
    if jobs <= 1 or len(seeds) < 2 or MIXES.get(mix.name) is not mix:
        return [run_seed(s, steps, mix, trace_len) for s in seeds]
    parts = max(1, min(len(seeds), jobs * 8))
    chunks = [(seeds[i::parts], steps, mix.name, trace_len) for i in range(parts)]
    results: list[SeedResult] = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for part in pool.map(_run_chunk, chunks):
            results.extend(part)
    results.sort(key=lambda r: r.seed)
    return results


def summarize(results: list[SeedResult]) -> dict[str, int]:
    """Totals of the per-seed statistics (``liveness_max_ticks`` is a maximum)."""
    total: dict[str, int] = {}
    for r in results:
        for key, value in r.stats.items():
            if key == "liveness_max_ticks":
                total[key] = max(total.get(key, 0), value)
            else:
                total[key] = total.get(key, 0) + value
    return total
