"""Errors raised by the durable storage, all rooted in the core's ``StorageError``.

The node maps every one of them to a refusal to start (at open) or a fail-stop (during
operation): a storage that cannot be trusted must not answer for the cluster.
"""

from __future__ import annotations

from pathlib import Path

from pgraft.core.types import StorageError


class CorruptionError(StorageError):
    """The on-disk data failed a checksum, an integrity check or a structural invariant.

    The message names the damaged file; the node refuses to start rather than serve it.
    """

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path}: storage is corrupt: {detail}")
        self.path = path
        self.detail = detail


class StorageLocked(StorageError):
    """Another process holds the data directory's lock file."""


class IdentityMismatch(StorageError):
    """The data directory belongs to another node id or another cluster name."""


class StorageFailure(StorageError):
    """An I/O error (disk full, permission, failed fsync) or a broken write invariant
    (a truncation below the commit index, a hard state going backwards). After it the
    node must stop: the in-memory view may no longer match the disk."""
