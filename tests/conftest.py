"""Shared pytest options: ``--rewrite`` regenerates golden files instead of comparing."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--rewrite",
        action="store_true",
        default=False,
        help="rewrite golden files (e.g. tests/core/testdata/*.txt) with the actual output",
    )


@pytest.fixture
def rewrite(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with ``--rewrite``."""
    return bool(request.config.getoption("--rewrite"))
