"""Counters and rate-limited logging for the transport.

Theory of operation
-------------------
A misbehaving peer (wrong cluster, wrong secret, garbage) typically retries in a tight
loop; logging every failure would flood the log and cost more than the failure itself.
``RateLimitedLog`` logs the first event of each *key* (e.g. "handshake failed from
10.0.0.5") and then at most one line per ``interval`` seconds for that key, saying how
many similar lines were suppressed. Every event is still counted in ``Stats`` so the
operator sees the real numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

STAT_NAMES = (
    "frames_in",
    "frames_out",
    "messages_in",
    "messages_out",
    "bytes_in",
    "bytes_out",
    "dropped",  # queue overflow (oldest dropped)
    "dropped_unknown_peer",  # send() to a node without an address
    "dropped_oversized",  # one message larger than the maximum frame
    "handshake_failures",
    "protocol_errors",  # garbage or oversized frames after the handshake
    "connections_in",
    "connections_out",
)


def new_stats() -> dict[str, int]:
    return dict.fromkeys(STAT_NAMES, 0)


class RateLimitedLog:
    """At most one line per key per ``interval`` seconds, counting suppressed lines."""

    _MAX_KEYS = 1024

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # key -> (logged at, suppressed)

    def log(self, level: int, key: str, msg: str, *args: object) -> None:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last[0] < self._interval:
            self._last[key] = (last[0], last[1] + 1)
            return
        if len(self._last) >= self._MAX_KEYS:
            self._last.clear()
        self._last[key] = (now, 0)
        if last is not None and last[1]:
            msg += " (%d similar lines suppressed)"
            args = (*args, last[1])
        self._logger.log(level, msg, *args)
