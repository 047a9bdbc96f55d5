"""The chaos run through SQL: three real PostgreSQL servers under faults, one honest run.

The servers come from the PostgreSQL test harness (``tests/pg/pgharness.py``: initdb
and pg_ctl as the ``postgres`` OS user, heartbeat 100 ms, election timeout 1000 ms);
``pg_env`` (tests/pg/conftest.py) installs the extension and the node venv, or skips
without root or PostgreSQL. ``pgraft.chaos.sqlrun`` drives SQL clients and the nemesis
(``pg_ctl stop -m immediate``, SIGKILL and SIGSTOP of the node) for 60 s, then checks
the history and the logs read back through ``pgraft_log_read``. The servers are
stopped in teardown whatever happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from pg.conftest import pg_env  # noqa: F401  (the session fixture, reused)
from pg.pgharness import Cluster, three
from pgraft.chaos.sqlrun import KINDS, run, summary

pytestmark = pytest.mark.pg


@pytest.fixture
def sql_cluster(pg_env: None) -> Iterator[Cluster]:  # noqa: F811
    c = Cluster("sqlchaos")
    try:
        yield c
    finally:
        c.close()


@pytest.mark.timeout(480)
def test_sql_chaos_run_is_linearizable_and_loses_nothing(sql_cluster: Cluster) -> None:
    servers = three(sql_cluster)
    report = asyncio.run(run(servers, duration_s=60.0, seed=11))
    print(summary(report))
    d = report.data
    assert d["nodes"] == 3
    assert sum(d["faults"].values()) >= 5
    assert set(d["faults"]) <= set(KINDS)
    assert d["operations"]["ok"] > 100
    assert d["log"]["acknowledged"] > 0
    assert d["linearizability"]["verdict"] == "linearizable", report.summary()
    assert report.violations == 0, report.summary()
    assert report.lost_acknowledgements == 0, report.summary()
    assert report.passed, report.summary()
