"""Unix-socket paths longer than ``sun_path`` (108 bytes on Linux).

Theory of operation
-------------------
A PostgreSQL data directory can be deep enough that ``<PGDATA>/pgraft.sock`` does not
fit in ``sockaddr_un.sun_path``. Binding or connecting through a descriptor of the
socket's directory avoids the limit: ``/proc/self/fd/<fd>/<name>`` is short and the
kernel resolves it to the real directory. Short paths are used as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Final

SUN_PATH_MAX: Final = 107  # 108 bytes including the terminating NUL


@contextlib.contextmanager
def _short(path: Path) -> Iterator[str]:
    if len(os.fsencode(str(path))) <= SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def bind_unix(path: Path) -> socket.socket:
    """A stream socket bound at ``path``. Raises ``OSError``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with _short(path) as name:
            sock.bind(name)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_unix(path: Path, timeout: float | None) -> socket.socket:
    """A stream socket connected to ``path``. Raises ``OSError``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        with _short(path) as name:
            sock.connect(name)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_unix_async(path: Path) -> socket.socket:
    """A non-blocking stream socket connected to ``path`` (for asyncio)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        with _short(path) as name:
            await asyncio.get_running_loop().sock_connect(sock, name)
    except BaseException:
        sock.close()
        raise
    return sock
