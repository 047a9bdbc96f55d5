"""Start a pgraft node with a bug planted on purpose: the chaos tests' teeth.

Usage: ``python broken_node.py BUG --config node.json``. The bug is patched into the
imported modules of this process only, then the node runs exactly as
``pgraft.chaos.launch`` runs it. The product carries no test switches.

Bugs:

* ``stale-read``        -- ``kv_get`` reads local state without a ReadIndex round;
* ``ack-before-commit`` -- a put or append is acknowledged (with the index it would
  get) when it has not applied within 100 ms, instead of waiting for commit;
* ``vote-any-log``      -- votes (and pre-votes) skip Raft's "candidate's log is at
  least as up to date" check;
* ``ack-before-fsync``  -- every Ready is acknowledged (append and vote replies sent,
  clients answered) before it is durable; it becomes durable ``LATE_S`` later.

Acknowledging before fsync only loses data when the machine loses its page cache, and a
SIGKILL does not: the honest stand-in keeps each Ready's writes in the process itself
for a while. The storage's write transactions are left open (the node's own reads on the
same SQLite connection see them, so the node runs normally) and committed -- handed to
the OS -- ``LATE_S`` after the first of them, by the next write or by a task on the
node's loop. A SIGKILL inside that window loses writes that were already acknowledged,
as a power loss does to a build that replies before its fsync. The nemesis's ``crash``
(every node killed at once) then loses acknowledged entries, or makes a node forget a
vote it granted.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
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


LATE_S = 0.5


def ack_before_fsync() -> None:
    from pgraft.node.wiring import Backend
    from pgraft.storage import schema
    from pgraft.storage.durable import DurableStorage

    opened: dict[int, float] = {}  # id(storage) -> when its open transaction began

    def commit_if_due(storage: Any, now: float) -> None:
        began = opened.get(id(storage))
        if began is not None and now - began >= LATE_S and storage._conn.in_transaction:
            storage._conn.execute("COMMIT")
            del opened[id(storage)]

    @contextlib.contextmanager
    def transaction(self: Any, *, sync: bool = True) -> Iterator[None]:
        commit_if_due(self, time.monotonic())
        before = self._state
        try:
            if not self._conn.in_transaction:
                self._conn.execute("BEGIN IMMEDIATE")
                opened[id(self)] = time.monotonic()
            yield
            if self._state != before:
                schema.write_state(self._conn, self._state)
        except sqlite3.Error as exc:
            opened.pop(id(self), None)
            self._abort()
            raise schema.wrap_error(self.path, exc) from exc
        except BaseException:
            opened.pop(id(self), None)
            self._abort()
            raise
        if self._state.applied != before.applied:
            self._image = None

    honest_close = DurableStorage.close

    def close(self: Any) -> None:
        commit_if_due(self, float("inf"))
        honest_close(self)

    honest_start = Backend.start

    async def start(self: Any) -> None:
        async def committer() -> None:
            while True:
                await asyncio.sleep(LATE_S / 4)
                with self._db:
                    commit_if_due(self.storage, time.monotonic())

        self._late_commits = asyncio.get_running_loop().create_task(committer())
        await honest_start(self)

    DurableStorage.transaction = transaction  # type: ignore[assignment,method-assign]
    DurableStorage.close = close  # type: ignore[method-assign]
    Backend.start = start  # type: ignore[method-assign]


BUGS: dict[str, Callable[[], None]] = {
    "stale-read": stale_read,
    "ack-before-commit": ack_before_commit,
    "vote-any-log": vote_any_log,
    "ack-before-fsync": ack_before_fsync,
}

if __name__ == "__main__":
    BUGS[sys.argv[1]]()
    launch.run(sys.argv[2:])
