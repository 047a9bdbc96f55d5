"""Bookkeeping for ReadIndex: linearizable reads without writing to the log.

Theory of operation
-------------------
A read asks "what is the commit index now?" The leader notes its commit index and
must then prove it was still leader at that moment: it sends a heartbeat round
carrying a context naming the request, and once a quorum of voters echoed that context
(or any later one: rounds are answered in order), every read queued up to that round
may be served at the noted index. A leader may only do this once an entry of its own
term is committed, since before that its commit index may lag the true one.

Requests are keyed by a leader-local sequence number (encoded as the heartbeat
context), so clients may reuse their own contexts freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReadRequest:
    index: int  # commit index when the request arrived
    frm: int  # who asked (the leader itself for local reads)
    context: bytes  # the client's context, echoed in the answer
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("_next_seq", "_pending", "_queue")

    def __init__(self) -> None:
        self._pending: dict[bytes, ReadRequest] = {}
        self._queue: list[bytes] = []
        self._next_seq = 1

    def add_request(self, index: int, frm: int, context: bytes) -> bytes:
        """Queue a read; returns the heartbeat context that will confirm it."""
        key = self._next_seq.to_bytes(8, "big")
        self._next_seq += 1
        self._pending[key] = ReadRequest(index, frm, context)
        self._queue.append(key)
        return key

    def recv_ack(self, frm: int, key: bytes) -> set[int] | None:
        """Record that ``frm`` confirmed round ``key``; returns who has confirmed it."""
        req = self._pending.get(key)
        if req is None:
            return None
        req.acks.add(frm)
        return req.acks

    def advance(self, key: bytes) -> list[ReadRequest]:
        """Release every request queued up to and including round ``key``."""
        if key not in self._pending:
            return []
        pos = self._queue.index(key) + 1
        keys, self._queue = self._queue[:pos], self._queue[pos:]
        return [self._pending.pop(k) for k in keys]

    def last_pending(self) -> bytes:
        """Context of the newest unconfirmed round (b"" if none)."""
        return self._queue[-1] if self._queue else b""
