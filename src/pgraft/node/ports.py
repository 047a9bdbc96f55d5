"""What the runtime needs from the layers below it, as small protocols.

Theory of operation
-------------------
The runtime is written against these narrow views rather than against concrete
classes, so the driver loop reads as the Raft recipe (persist, send, apply, advance)
and tests can substitute pieces. ``pgraft.node.wiring`` builds the real ones (durable
SQLite storage, the replicated state machine, the TCP transport).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pgraft.core.storage import Storage
from pgraft.core.types import ConfState, Entry, Message, Ready, Snapshot


class DurableStorage(Storage, Protocol):
    """The core's read view plus the writes the runtime performs."""

    def save_ready(self, ready: Ready) -> None:
        """Persist snapshot, entries and hard state in one fsynced transaction."""
        ...

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot: ...

    def compact(self, index: int) -> None: ...


class StateMachine(Protocol):
    """The replicated objects (log, key-value map, member addresses)."""

    @property
    def applied(self) -> int: ...

    def apply(self, entries: Sequence[Entry]) -> list[tuple[bytes, object]]:
        """Apply committed entries in order; (request_id, result) for each command."""
        ...

    def restore(self, snapshot: Snapshot) -> None: ...

    def snapshot_data(self) -> bytes: ...


class Transport(Protocol):
    def send(self, messages: Sequence[Message]) -> None: ...

    def set_peer(self, node_id: int, host: str, port: int) -> None: ...

    def remove_peer(self, node_id: int) -> None: ...
