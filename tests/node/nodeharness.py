"""Real node processes on loopback for the node tests (imported by conftest and tests).

``Cluster`` starts ``python -m pgraft.node`` processes with fresh data directories,
dynamic free ports and short timeouts (heartbeat 50 ms, election 500 ms), talks to them
through their control sockets, and kills every process it started at teardown. Every
wait is bounded by a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pgraft.control.client import ControlClient
from pgraft.control.errors import ControlError

HEARTBEAT_MS = 50
ELECTION_MS = 500


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(pred: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
        except (ControlError, OSError) as exc:
            last_exc = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_exc!r})")


RETRY_CODES = frozenset({"PR001", "PR002", "57014"})


def append(n: NodeProc, data: str, attempts: int = 10) -> int:
    """``log_append`` retried on the codes that mean "try again" (no leader right now,
    proposal dropped or lost in a leader change), as a client would."""
    for attempt in range(attempts):
        try:
            index: int = n.call("log_append", term=0, data=data, timeout_ms=5000)
            return index
        except ControlError as exc:
            if exc.code not in RETRY_CODES or attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


class NodeProc:
    def __init__(self, root: Path, node_id: int, cluster_name: str, **overrides: Any) -> None:
        self.node_id = node_id
        self.dir = root / f"n{node_id}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config: dict[str, Any] = {
            "node_id": node_id,
            "cluster_name": cluster_name,
            "address": "127.0.0.1",
            "port": self.port,
            "data_dir": str(self.dir / "data"),
            "control_socket": str(self.dir / "pgraft.sock"),
            "heartbeat_ms": HEARTBEAT_MS,
            "election_timeout_ms": ELECTION_MS,
        }
        self.config.update(overrides)
        self.config_path = self.dir / "node.json"
        self.log_path = self.dir / "node.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.config["control_socket"])

    def write_config(self) -> None:
        self.config_path.write_text(json.dumps(self.config))

    def start(self) -> None:
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pgraft.node", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: self.call("ping"), 15, f"node {self.node_id} to answer ping")

    def call(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        with ControlClient(self.socket, timeout=timeout) as c:
            return c.call(op, **args)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> int:
        """SIGTERM, wait for a clean exit; returns the exit status."""
        assert self.proc is not None
        self.signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        finally:
            self.kill()
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    def __init__(self, root: Path, cluster_name: str = "test") -> None:
        self.root = root
        self.cluster_name = cluster_name
        self.nodes: dict[int, NodeProc] = {}

    def add(self, node_id: int, start: bool = True, **overrides: Any) -> NodeProc:
        name = overrides.pop("cluster_name", self.cluster_name)
        n = NodeProc(self.root, node_id, name, **overrides)
        self.nodes[node_id] = n
        if start:
            n.start()
        return n

    def form(self, count: int, **overrides: Any) -> list[NodeProc]:
        """Start ``count`` nodes; init node 1 and add the others through it."""
        nodes = [self.add(i, **overrides) for i in range(1, count + 1)]
        assert nodes[0].call("init") is True
        for n in nodes[1:]:
            assert (
                nodes[0].call(
                    "add_node", node_id=n.node_id, address="127.0.0.1", port=n.port, timeout=60
                )
                is True
            )
        return nodes

    def leader(self, among: list[NodeProc] | None = None, timeout: float = 15.0) -> NodeProc:
        """The node all of ``among`` (default: running nodes) agree leads."""
        group = among or [n for n in self.nodes.values() if n.proc is not None]

        def agreed() -> NodeProc | None:
            leaders = {n.call("leader", timeout=5) for n in group}
            if len(leaders) == 1:
                lid = leaders.pop()
                if lid and lid in self.nodes and self.nodes[lid] in group:
                    return self.nodes[lid]
            return None

        result: NodeProc = wait_until(agreed, timeout, "an agreed leader")
        return result

    def close(self) -> None:
        for n in self.nodes.values():
            n.kill()
