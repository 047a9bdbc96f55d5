"""Real PostgreSQL servers running pgraft, driven the way a user drives them.

Theory of operation
-------------------
Each ``Server`` is a throwaway PostgreSQL instance: ``initdb`` and ``pg_ctl`` run as
the ``postgres`` OS user (PostgreSQL refuses to run as root) in a directory under
/var/tmp (which that user can traverse), listening only on a Unix socket in that
directory, with ``shared_preload_libraries = 'pgraft'``, its own loopback Raft port
and short Raft timeouts. SQL goes through ``psql`` exactly as a user would type it;
errors come back as ``SqlError`` carrying the SQLSTATE (psql's verbose error format).

Every wait is a bounded poll (``wait_for``): tests never sleep for a fixed time and
hope, and never wait forever.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT_MS = 100
ELECTION_MS = 1000
T = TypeVar("T")

_ERROR_RE = re.compile(r"ERROR:\s+([0-9A-Z]{5}):\s+(.*)")


def pg_bindir() -> Path | None:
    """The bin directory of the installed PostgreSQL (pg_config, else the highest major)."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and Path(out.stdout.strip(), "initdb").exists():
            return Path(out.stdout.strip())
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    return candidates[-1].parent if candidates else None


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback TCP ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll ``probe`` until it returns a truthy value; raise AssertionError after ``timeout``.

    Exceptions from ``probe`` count as "not yet" (the last one is reported)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (SqlError, subprocess.TimeoutExpired) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}: {last}")
        time.sleep(0.1)


class SqlError(Exception):
    """psql reported an error; ``sqlstate`` and ``message`` as the server sent them."""

    def __init__(self, sqlstate: str, message: str, stderr: str) -> None:
        super().__init__(f"{sqlstate}: {message}")
        self.sqlstate = sqlstate
        self.message = message
        self.stderr = stderr


@dataclass
class Server:
    """One PostgreSQL server with pgraft preloaded, as node ``node_id``."""

    base: Path
    node_id: int
    port: int
    raft_port: int
    cluster_name: str = "pgtest"
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.base / f"node{self.node_id}"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def logfile(self) -> Path:
        return self.dir / "server.log"

    def _as_postgres(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            list(args), user="postgres", check=True, timeout=timeout,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def initdb(self) -> None:
        bindir = pg_bindir()
        assert bindir is not None
        self.dir.mkdir(parents=True)
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(
            str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync",
        )  # fmt: skip
        conf = {
            "port": str(self.port),
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.dir}'",
            "shared_preload_libraries": "'pgraft'",
            "fsync": "off",
            "pgraft.node_id": str(self.node_id),
            "pgraft.address": "'127.0.0.1'",
            "pgraft.port": str(self.raft_port),
            "pgraft.cluster_name": f"'{self.cluster_name}'",
            "pgraft.heartbeat_interval": str(HEARTBEAT_MS),
            "pgraft.election_timeout": str(ELECTION_MS),
            **self.settings,
        }
        with (self.data / "postgresql.conf").open("a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in conf.items())

    def start(self) -> None:
        bindir = pg_bindir()
        assert bindir is not None
        self._as_postgres(
            str(bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        bindir = pg_bindir()
        assert bindir is not None
        self._as_postgres(str(bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def is_up(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def psql(self, sql: str, *, user: str = "postgres", timeout: float = 60) -> str:
        """Run ``sql`` through psql; stdout (unaligned, tuples only). Raises SqlError."""
        bindir = pg_bindir()
        assert bindir is not None
        cmd = [
            str(bindir / "psql"), "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
            "-v", "VERBOSITY=verbose", "-h", str(self.dir), "-p", str(self.port), "-U", user,
            "-d", "postgres", "-c", sql,
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if out.returncode != 0:
            m = _ERROR_RE.search(out.stderr)
            if m is None:
                raise SqlError("?????", out.stderr.strip(), out.stderr)
            raise SqlError(m.group(1), m.group(2).strip(), out.stderr)
        return out.stdout.strip()

    def run_script(self, script: str, timeout: float = 60) -> str:
        """Run a multi-statement script through psql, continuing after errors; stdout."""
        bindir = pg_bindir()
        assert bindir is not None
        cmd = [
            str(bindir / "psql"), "-X", "-q", "-A", "-t", "-h", str(self.dir), "-p",
            str(self.port), "-U", "postgres", "-d", "postgres", "-f", "-",
        ]  # fmt: skip
        out = subprocess.run(
            cmd, input=script, capture_output=True, text=True, timeout=timeout, check=False
        )
        return out.stdout

    def rows(self, sql: str) -> list[list[str]]:
        text = self.psql(sql)
        return [line.split("|") for line in text.splitlines() if line]

    def scalar(self, sql: str) -> str:
        return self.psql(sql)

    def error(self, sql: str, *, user: str = "postgres", timeout: float = 60) -> SqlError:
        """Run ``sql`` expecting an error; return it (AssertionError if it succeeded)."""
        try:
            out = self.psql(sql, user=user, timeout=timeout)
        except SqlError as err:
            return err
        raise AssertionError(f"expected an error from {sql!r}, got {out!r}")

    def worker_state(self) -> str:
        return self.scalar("SELECT pgraft_get_worker_state()")

    def wait_running(self, timeout: float = 30) -> None:
        wait_for(f"node {self.node_id} RUNNING", lambda: self.worker_state() == "RUNNING", timeout)

    def node_pid(self) -> int:
        return int(self.scalar("SELECT pid FROM pgraft_get_worker_info()"))

    def leader(self) -> int:
        return int(self.scalar("SELECT pgraft_get_leader()"))

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""


class Cluster:
    """A set of servers under one temporary directory; stops them all on close."""

    def __init__(self, name: str = "pgtest") -> None:
        self.base = Path(tempfile.mkdtemp(prefix="pgraft-pgtest-", dir="/var/tmp"))
        os.chmod(self.base, 0o755)
        self.name = name
        self.servers: dict[int, Server] = {}

    def add(
        self,
        node_id: int,
        cluster_name: str | None = None,
        raft_port_is_pg_port: bool = False,
        settings: dict[str, str] | None = None,
    ) -> Server:
        """initdb and start server ``node_id`` (``settings``: extra postgresql.conf lines)."""
        port, raft_port = free_ports(2)
        if raft_port_is_pg_port:
            raft_port = port
        name = cluster_name or self.name
        s = Server(self.base, node_id, port, raft_port, name, dict(settings or {}))
        s.initdb()
        s.start()
        self.servers[node_id] = s
        return s

    def up(self) -> list[Server]:
        return [s for s in self.servers.values() if s.is_up()]

    def leader_everywhere(
        self, among: Iterable[Server] | None = None, exclude: int = 0
    ) -> int | None:
        """The leader id when every given server reports the same one (not 0 nor exclude)."""
        servers = list(among) if among is not None else self.up()
        leaders = {s.leader() for s in servers}
        if len(leaders) == 1 and not leaders & {0, exclude}:
            return leaders.pop()
        return None

    def wait_leader(
        self, among: Iterable[Server] | None = None, timeout: float = 20, exclude: int = 0
    ) -> int:
        """Wait until the servers agree on a leader (other than ``exclude``); its id."""
        servers = list(among) if among is not None else self.up()
        return wait_for(
            "one leader seen by all", lambda: self.leader_everywhere(servers, exclude), timeout
        )

    def form(self, ids: Iterable[int]) -> None:
        """The seed's flow: CREATE EXTENSION and pgraft_init() on each node, then the
        first one adds the others."""
        servers = [self.servers[i] for i in ids]
        for s in servers:
            s.psql("CREATE EXTENSION IF NOT EXISTS pgraft")
            s.wait_running()
            assert s.scalar("SELECT pgraft_init()") == "t"
        first = servers[0]
        for s in servers[1:]:
            sql = f"SELECT pgraft_add_node({s.node_id}, '127.0.0.1', {s.raft_port})"
            assert first.scalar(sql) == "t"

    def kill_node_process(self, server: Server, sig: int = signal.SIGKILL) -> int:
        pid = server.node_pid()
        os.kill(pid, sig)
        return pid

    def close(self) -> None:
        for s in self.servers.values():
            if s.is_up():
                with contextlib.suppress(subprocess.SubprocessError):
                    s.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Acked:
    """Appends acknowledged to SQL: index -> data."""

    def __init__(self) -> None:
        self.entries: dict[int, str] = {}

    def append(self, server: Server, data: str) -> int:
        index = int(server.scalar(f"SELECT pgraft_log_append(0, {_quote(data)})"))
        assert index not in self.entries, f"index {index} acknowledged twice"
        self.entries[index] = data
        return index

    def check(self, server: Server) -> None:
        """Every acknowledged entry is on ``server`` at its index (waits for apply)."""
        last = max(self.entries)
        assert server.scalar(f"SELECT pgraft_log_apply({last})") == "t"
        rows = server.rows(f"SELECT index, data FROM pgraft_log_read(1, {last}, 100000)")
        found = {int(i): d for i, d in rows}
        for index, data in self.entries.items():
            assert found.get(index) == data, f"node {server.node_id} lost entry {index}"


def three(cluster: Cluster) -> list[Server]:
    servers = [cluster.add(i) for i in (1, 2, 3)]
    cluster.form([1, 2, 3])
    cluster.wait_leader()
    return servers
