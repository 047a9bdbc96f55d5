"""Rate-limited logging: one line per key per interval, suppressed lines counted."""

from __future__ import annotations

import logging

import pytest

from pgraft.transport.monitor import RateLimitedLog


def test_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    rlog = RateLimitedLog(logging.getLogger("test.rl"), interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="test.rl"):
        for i in range(5):
            rlog.log(logging.WARNING, "peer-a", "failure %d", i)
        rlog.log(logging.WARNING, "peer-b", "other peer")
        now[0] += 10.0
        rlog.log(logging.WARNING, "peer-a", "failure %d", 5)
    assert [r.getMessage() for r in caplog.records] == [
        "failure 0",
        "other peer",
        "failure 5 (4 similar lines suppressed)",
    ]
