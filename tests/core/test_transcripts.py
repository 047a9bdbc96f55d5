"""Interaction transcripts of the Raft core: replay each ``testdata/*.txt`` file and
compare its recorded outputs with what the core does now (see ``transcript.py`` for the
file format and commands). ``pytest tests/core --rewrite`` regenerates the outputs;
review the resulting diff by eye, since a wrong golden file is a wrong test."""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from transcript import run, run_file

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path, rewrite: bool) -> None:
    expected = path.read_text()
    actual = run_file(path)
    if rewrite:
        if actual != expected:
            path.write_text(actual)
        return
    if actual != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{path.name} (golden)",
            tofile=f"{path.name} (actual)",
        )
        pytest.fail("transcript differs (rerun with --rewrite to accept):\n" + "".join(diff))


def test_there_are_enough_scenarios() -> None:
    assert len(FILES) >= 20


def test_harness_replaces_stale_output_and_reaches_a_fixed_point() -> None:
    stale = "# one node\nadd-nodes 1 voters=(1)\n----\nbogus\n\ncampaign 1\n----\nok\n"
    actual = run(stale)
    assert "bogus" not in actual
    assert actual.startswith("# one node\nadd-nodes 1 voters=(1)\n----\n")
    assert "1 is now leader at term 1, leader 1" in actual
    assert run(actual) == actual
