"""An exclusive lock on a data directory, held for the lifetime of a ``DurableStorage``.

``flock(2)`` locks belong to an open file description, so a second open of the same
directory fails even inside one process, and the kernel releases the lock when the
holder dies (SIGKILL included): no stale-lock cleanup is ever needed. The holder's pid
is written into the file only to make the refusal message useful.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pgraft.storage.errors import StorageLocked


class DirLock:
    """Holds ``<directory>/LOCK`` exclusively until ``release``."""

    def __init__(self, path: Path) -> None:
        """Raises ``StorageLocked`` when another open file description holds it."""
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StorageLocked(
                f"{path}: data directory is in use by another process (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
