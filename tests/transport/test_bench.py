"""The benchmark program runs and reports JSON (its numbers are not asserted)."""

from __future__ import annotations

import json

import pytest

from pgraft.transport import bench


def test_bench_reports_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--messages", "640", "--seconds", "10", "--secret"])
    result = json.loads(capsys.readouterr().out)
    assert result["messages"] == 640 and result["dropped"] == 0
    assert result["messages_per_s"] > 0
