"""Real pgraft node processes for the chaos harness.

Theory of operation
-------------------
Each node is a separate ``python -m pgraft.node`` process (started through
``pgraft.chaos.launch`` or a test's broken-build wrapper), run inside the harness's
network namespace, listening on its own loopback address. Its directory holds
``node.json``, ``data/`` and ``node.log``; the control socket lives in the directory
too, and the harness talks to it from outside the namespace. One node may have its data
directory on a small tmpfs of its own so that its disk can be filled on purpose.

The harness controls processes only by pid: SIGKILL, SIGSTOP/SIGCONT, SIGTERM, and a
fresh start from the same directory. Control calls open a connection per request with
a deadline, so a stopped or dead node costs a timeout, never a hang.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgraft.chaos.netns import node_address
from pgraft.control.client import AsyncControlClient
from pgraft.control.errors import DUPLICATE_NODE, TIMEOUT, ControlError

PEER_PORT = 7000
DEFAULT_LAUNCHER: tuple[str, ...] = (sys.executable, "-m", "pgraft.chaos.launch")


@dataclass
class NodeProc:
    node_id: int
    directory: Path
    disk_mount: Path | None = None  # a tmpfs of its own holding data/, if any
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    starts: int = 0
    exits: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return node_address(self.node_id)

    @property
    def config_path(self) -> Path:
        return self.directory / "node.json"

    @property
    def data_dir(self) -> Path:
        return (self.disk_mount or self.directory) / "data"

    @property
    def socket(self) -> Path:
        return self.directory / "pgraft.sock"

    @property
    def log_path(self) -> Path:
        return self.directory / "node.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """N node processes in one namespace; node 1 bootstraps, the others join it."""

    def __init__(
        self,
        workdir: Path,
        size: int,
        prefix: Sequence[str],
        launcher: Sequence[str] = DEFAULT_LAUNCHER,
        heartbeat_ms: int = 100,
        election_timeout_ms: int = 1000,
        disk_node: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.prefix = list(prefix)
        self.launcher = list(launcher)
        self.heartbeat_ms = heartbeat_ms
        self.election_timeout_ms = election_timeout_ms
        self.nodes: dict[int, NodeProc] = {}
        for i in range(1, size + 1):
            directory = workdir / f"n{i}"
            directory.mkdir(parents=True, exist_ok=True)
            mount = workdir / "disk" if i == disk_node else None
            self.nodes[i] = NodeProc(i, directory, mount)

    @property
    def ids(self) -> list[int]:
        return sorted(self.nodes)

    def mount_disks(self, size_mb: int = 64) -> None:
        for node in self.nodes.values():
            if node.disk_mount is not None:
                node.disk_mount.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", node.disk_mount],
                    check=True,
                    timeout=10,
                )

    def unmount_disks(self) -> None:
        for node in self.nodes.values():
            if node.disk_mount is not None:
                subprocess.run(["umount", node.disk_mount], check=False, timeout=10)

    def write_config(self, node: NodeProc) -> None:
        config = {
            "node_id": node.node_id,
            "cluster_name": "chaos",
            "address": node.address,
            "port": PEER_PORT,
            "data_dir": str(node.data_dir),
            "control_socket": str(node.socket),
            "heartbeat_ms": self.heartbeat_ms,
            "election_timeout_ms": self.election_timeout_ms,
            "pg_port": 5432,
            "bootstrap": False,
        }
        node.config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")

    def start(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.running:
            return
        self.write_config(node)
        node.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [*self.prefix, *self.launcher, "--config", str(node.config_path)]
        with node.log_path.open("ab") as log:
            log.write(f"--- chaos: start #{node.starts + 1} at {time.time():.3f}\n".encode())
            node.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        node.starts += 1
        node.paused = False

    def signal(self, node_id: int, sig: signal.Signals) -> None:
        node = self.nodes[node_id]
        if node.proc is not None and node.running:
            os.kill(node.proc.pid, sig)
            if sig is signal.SIGSTOP:
                node.paused = True
            elif sig is signal.SIGCONT:
                node.paused = False

    def kill(self, node_id: int) -> None:
        """SIGKILL and reap (a paused process dies too)."""
        node = self.nodes[node_id]
        if node.proc is None:
            return
        if node.running:
            os.kill(node.proc.pid, signal.SIGKILL)
        node.exits.append(node.proc.wait(timeout=30))
        node.proc = None
        node.paused = False

    def reap(self, node_id: int) -> int | None:
        """The exit status of a node that stopped by itself, else None."""
        node = self.nodes[node_id]
        if node.proc is None or node.proc.poll() is None:
            return None
        code = node.proc.returncode
        node.exits.append(code)
        node.proc = None
        return code

    def wipe(self, node_id: int) -> None:
        """Delete a stopped node's state so it can join again as a new member."""
        node = self.nodes[node_id]
        if node.running:
            raise RuntimeError(f"node {node_id} is running")
        shutil.rmtree(node.data_dir, ignore_errors=True)

    def stop_all(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.running:
                self.signal(node.node_id, signal.SIGCONT)
                node.proc.terminate()
        deadline = time.monotonic() + 10
        for node in self.nodes.values():
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=10)
                node.proc = None

    async def call(self, target: int, op: str, /, timeout: float = 5.0, **args: Any) -> Any:
        """One control request to node ``target`` with a deadline. Raises
        ``ControlError``, ``OSError`` or ``TimeoutError``."""
        node = self.nodes[target]
        async with asyncio.timeout(timeout):
            client = await AsyncControlClient.connect(node.socket)
            try:
                return await client.call(op, **args)
            finally:
                await client.close()

    async def wait_ready(self, node_id: int, timeout: float = 30.0) -> None:
        """Wait until the node answers ``ping``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.call(node_id, "ping", timeout=1.0)
                return
            except (OSError, TimeoutError, ValueError) as exc:
                if not self.nodes[node_id].running:
                    raise RuntimeError(
                        f"node {node_id} exited: {self.nodes[node_id].log_tail()}"
                    ) from exc
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.1)

    async def leader(self, candidates: Sequence[int] | None = None) -> int:
        """The leader as some live node sees it (0 if none is known)."""
        for node_id in candidates or self.live():
            try:
                leader = await self.call(node_id, "leader", timeout=1.0)
            except (OSError, TimeoutError, ValueError, RuntimeError):
                continue
            if isinstance(leader, int) and leader:
                return leader
        return 0

    def live(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.running and not n.paused]

    async def bootstrap(self) -> None:
        """Start every node, ``init`` node 1, add the others through it."""
        for node_id in self.ids:
            self.start(node_id)
        for node_id in self.ids:
            await self.wait_ready(node_id)
        await self.call(self.ids[0], "init", timeout=30.0)
        for node_id in self.ids[1:]:
            await self.add(node_id, via=[self.ids[0]], timeout=60.0)

    async def add(self, node_id: int, via: Sequence[int], timeout: float) -> None:
        """``add_node`` through the first member in ``via`` that accepts it."""
        deadline = time.monotonic() + timeout
        node = self.nodes[node_id]
        last: BaseException | None = None
        unsure = False  # an earlier attempt may have gone through
        while time.monotonic() < deadline:
            for member in via:
                try:
                    await self.call(
                        member,
                        "add_node",
                        timeout=max(1.0, deadline - time.monotonic()),
                        node_id=node_id,
                        address=node.address,
                        port=PEER_PORT,
                    )
                    return
                except ControlError as exc:
                    if exc.code == DUPLICATE_NODE and unsure:
                        return
                    # A duplicate without an earlier attempt: the member has not yet
                    # applied the node's removal; ask again.
                    unsure = unsure or exc.code == TIMEOUT
                    last = exc
                except (OSError, TimeoutError, ValueError) as exc:
                    unsure = unsure or not isinstance(exc, ConnectionError | FileNotFoundError)
                    last = exc
            await asyncio.sleep(0.5)
        raise RuntimeError(f"could not add node {node_id}: {last!r}")
