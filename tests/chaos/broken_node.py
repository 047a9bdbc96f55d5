"""Start a pgraft node with a bug planted on purpose: the chaos tests' teeth.

Usage: ``python broken_node.py BUG --config node.json``. The bug is patched into the
imported modules of this process only, then the node runs exactly as
``pgraft.chaos.launch`` runs it. The product carries no test switches.

Bugs:

* ``stale-read``        -- ``kv_get`` reads local state without a ReadIndex round;
* ``ack-before-commit`` -- a put or append is acknowledged (with the index it would
  get) when it has not applied within 100 ms, instead of waiting for commit;
* ``vote-any-log``      -- votes (and pre-votes) skip Raft's "candidate's log is at
  least as up to date" check.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from pgraft.chaos import launch


def stale_read() -> None:
    from pgraft.node import ops

    async def no_barrier(node: Any, args: Any) -> int:
        return 0

    ops.read_barrier = no_barrier  # type: ignore[assignment]


def ack_before_commit() -> None:
    from pgraft.node import ops
    from pgraft.statemachine import commands
    from pgraft.statemachine.machine import Result

    honest = ops.submit

    async def early(node: Any, args: Any, make: Callable[[bytes], Any]) -> Any:
        probe = make(b"\0" * 16)
        if not isinstance(probe, commands.Put | commands.LogAppend):
            return await honest(node, args, make)
        rid = commands.new_request_id()
        fut = node.propose(rid, commands.encode(make(rid)))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), 0.1)
        except TimeoutError:
            guess = node.backend.storage.last_index()
            kind = "put" if isinstance(probe, commands.Put) else "log"
            return Result(guess, kind, guess)

    ops.submit = early  # type: ignore[assignment]


def vote_any_log() -> None:
    from pgraft.core.log import RaftLog

    RaftLog.is_up_to_date = lambda self, last_index, last_term: True  # type: ignore[method-assign]


BUGS: dict[str, Callable[[], None]] = {
    "stale-read": stale_read,
    "ack-before-commit": ack_before_commit,
    "vote-any-log": vote_any_log,
}

if __name__ == "__main__":
    BUGS[sys.argv[1]]()
    launch.run(sys.argv[2:])
