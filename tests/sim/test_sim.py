"""The seeded simulator against the real core: every seed must stay safe and live.

The default suite runs 300 seeds x 2000 steps of the default mix (in chunks of 50, so a
failure names its range), plus 100 seeds of each focused mix. The soak
(10,000 seeds) is marked slow; ``make soak`` runs it.
"""

from __future__ import annotations

import pytest

from pgraft.sim import MIXES, run_seed, run_seeds
from pgraft.sim.runner import SeedResult

DEFAULT_SEEDS = 300
CHUNK = 50


def _assert_clean(results: list[SeedResult]) -> None:
    failures = [r for r in results if not r.ok]
    if failures:
        others = ", ".join(f"{r.seed} ({r.kind})" for r in failures[1:])
        pytest.fail(f"{failures[0].report}\nother failing seeds: {others or 'none'}")


@pytest.mark.parametrize("first", range(0, DEFAULT_SEEDS, CHUNK))
def test_default_mix_is_safe_and_live(first: int) -> None:
    _assert_clean(run_seeds(list(range(first, first + CHUNK)), 2000, MIXES["default"]))


@pytest.mark.parametrize("mix", ["figure8", "elections", "plain"])
def test_focused_mixes_are_safe_and_live(mix: str) -> None:
    _assert_clean(run_seeds(list(range(100)), 2000, MIXES[mix]))


def test_a_seed_replays_exactly() -> None:
    first = run_seed(12345, 1500, MIXES["default"], report_always=True)
    again = run_seed(12345, 1500, MIXES["default"], report_always=True)
    assert first.stats == again.stats
    assert first.report == again.report
    assert first.stats["committed"] > 0 and first.stats["crashes"] > 0


def test_runs_exercise_every_fault_and_client_action() -> None:
    results = run_seeds(list(range(20)), 2000, MIXES["default"])
    total = {k: sum(r.stats[k] for r in results) for k in results[0].stats}
    for key in ("terms_with_leader", "committed", "reads", "crashes", "conf_changes", "dropped"):
        assert total[key] > 0, key


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_soak_ten_thousand_seeds() -> None:
    _assert_clean(run_seeds(list(range(10_000)), 2000, MIXES["default"], jobs=2))
