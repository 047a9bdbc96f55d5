"""Durable storage of a node's Raft log, hard state and snapshot point (SQLite).

See ``durable.py`` for the write path, ``view.py`` for reads and lazy snapshots,
``schema.py`` for the file format and the corruption checks.
"""

from pgraft.storage.durable import DurableStorage
from pgraft.storage.errors import CorruptionError, IdentityMismatch, StorageFailure, StorageLocked
from pgraft.storage.view import StateImage

__all__ = [
    "CorruptionError",
    "DurableStorage",
    "IdentityMismatch",
    "StateImage",
    "StorageFailure",
    "StorageLocked",
]
