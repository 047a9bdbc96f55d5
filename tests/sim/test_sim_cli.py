"""The command lines: ``python -m pgraft.sim`` and the ``python -m pgraft.bench`` dispatcher."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pgraft.bench import __main__ as bench_main
from pgraft.bench import core as bench_core
from pgraft.core.rawnode import RawNode
from pgraft.core.types import Ready
from pgraft.sim.__main__ import main as sim_main


def test_sim_cli_prints_a_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--seeds", "3", "--first", "7", "--steps", "300"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["seeds"] == 3 and summary["failures"] == 0 and summary["steps_run"] == 900


def test_sim_cli_failure_report_has_seed_replay_and_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = RawNode.ready

    def without_vote(self: RawNode) -> Ready:
        rd = ready(self)
        if rd.hard_state is None:
            return rd
        return dataclasses.replace(rd, hard_state=dataclasses.replace(rd.hard_state, vote=0))

    monkeypatch.setattr(RawNode, "ready", without_vote)
    assert sim_main(["--seed", "4", "--steps", "500", "--mix", "elections", "--trace", "20"]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out)["failing_seeds"] == [4]
    assert "SIMULATION FAILURE seed=4" in out.err
    assert "-m pgraft.sim --seed 4 --steps 500 --mix elections" in out.err
    assert "vote-not-durable" in out.err
    assert "last 20 events" in out.err


def test_bench_dispatcher_usage_and_missing_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_main.main([]) == 2
    assert bench_main.main(["nope"]) == 2
    monkeypatch.setitem(bench_main.SUBCOMMANDS, "ghost", ("pgraft.bench.ghost", "absent"))
    assert bench_main.main(["ghost"]) == 2
    assert "module pgraft.bench.ghost is missing" in capsys.readouterr().err


def test_bench_core_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main.main(["core", "--seconds", "0.1", "--batch", "16"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bench"] == "core" and result["nodes"] == bench_core.NODES == 3
    assert result["entries"] > 0 and result["entries_per_s"] > 0 and result["batch"] == 16
