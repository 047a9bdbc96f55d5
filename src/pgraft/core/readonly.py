"""Bookkeeping for ReadIndex: linearizable reads without writing to the log.

Theory of operation
-------------------
A read asks "what is the commit index now?" The leader notes its commit index and
must then prove it was still leader at that moment: it sends a heartbeat round
carrying a context naming the round, and once a quorum of voters echoed that context
(or a later one: rounds are answered in order), every read queued up to that round may
be served at the index noted for it. A leader may only do this once an entry of its own
term is committed, since before that its commit index may lag the true one.

Reads arriving while the newest round's heartbeats have not yet left this node (they
sit in the Ready being built) join that round: its acknowledgements are necessarily
sent after those reads arrived, so they confirm leadership for them too. ``seal()``
closes the round when the runtime takes the messages.

Rounds are keyed by a leader-local sequence number (encoded as the heartbeat context),
so clients may reuse their own contexts freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class ReadRequest:
    index: int  # commit index when the request arrived
    frm: int  # who asked (the leader itself for local reads)
    context: bytes  # the client's context, echoed in the answer


@dataclass(slots=True)
class _Round:
    requests: list[ReadRequest]
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    __slots__ = ("_next_seq", "_open", "_queue", "_rounds")

    def __init__(self) -> None:
        self._rounds: dict[bytes, _Round] = {}
        self._queue: list[bytes] = []
        self._open = b""  # newest round whose heartbeats are still unsent
        self._next_seq = 1

    def add_request(self, index: int, frm: int, context: bytes) -> bytes:
        """Queue a read. Returns the context of the new round whose heartbeats the
        caller must send, or b"" when the read joined a round not yet sent."""
        req = ReadRequest(index, frm, context)
        if self._open:
            self._rounds[self._open].requests.append(req)
            return b""
        key = self._next_seq.to_bytes(8, "big")
        self._next_seq += 1
        self._rounds[key] = _Round([req])
        self._queue.append(key)
        self._open = key
        return key

    def seal(self) -> None:
        """The queued heartbeats left: later reads need a new round."""
        self._open = b""

    def recv_ack(self, frm: int, key: bytes) -> set[int] | None:
        """Record that ``frm`` confirmed round ``key``; returns who has confirmed it."""
        rnd = self._rounds.get(key)
        if rnd is None:
            return None
        rnd.acks.add(frm)
        return rnd.acks

    def advance(self, key: bytes) -> list[ReadRequest]:
        """Release every request queued up to and including round ``key``."""
        if key not in self._rounds:
            return []
        pos = self._queue.index(key) + 1
        keys, self._queue = self._queue[:pos], self._queue[pos:]
        if self._open in keys:
            self._open = b""
        return [req for k in keys for req in self._rounds.pop(k).requests]

    def last_pending(self) -> bytes:
        """Context of the newest unconfirmed round (b"" if none)."""
        return self._queue[-1] if self._queue else b""
