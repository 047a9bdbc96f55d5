"""Fixtures for tests against real PostgreSQL servers (marker ``pg``).

The session fixture builds and installs the extension (``make -C extension
install``) and refreshes the node's virtualenv (scripts/install-node-venv.sh, a no-op
when current), so the servers run the code in this tree. The tests need root (they
start servers as the ``postgres`` OS user) and an installed PostgreSQL; without
either they are skipped with the reason.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator

import pytest

from .pgharness import REPO, Cluster, pg_bindir


@pytest.fixture(scope="session")
def pg_env() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: servers are started as the postgres OS user")
    if pg_bindir() is None:
        pytest.skip("no PostgreSQL installation found (pg_config / /usr/lib/postgresql)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres OS user")
    for cmd in (
        ["make", "-s", "-C", str(REPO / "extension"), "install"],
        [str(REPO / "scripts" / "install-node-venv.sh")],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"


@pytest.fixture
def cluster(pg_env: None) -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()
