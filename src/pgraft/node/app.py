"""Assembling and running one node process: backend, runtime, control server, signals.

Theory of operation
-------------------
``NodeApp`` opens the backend (refusing to start on corrupt or foreign storage), starts
the transport and the control socket, resumes from disk when the node has a cluster
(or bootstraps when ``"bootstrap": true`` and nothing is on disk), and runs the driver
until a stop is requested: SIGTERM/SIGINT, the parent process going away
(``--parent-pid``: checked every half second, by pid liveness and by our parent pid
changing), or a fatal error in the driver (fail-stop: the exception propagates and the
process exits non-zero). SIGHUP re-reads the configuration file and applies the
reloadable keys.

The transport's handshake hook lives here because it joins three facts: our cluster id,
our configuration, and whether this node may be adopted. A peer of our own cluster is
accepted. A peer of another cluster that *we* dialed is accepted only while it is a
learner we are adding (its side decides whether it agrees to be adopted). A peer of
another cluster that dialed *us* is the leader of a cluster adding this node: the
runtime accepts if this node is adoptable and refuses otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

from pgraft.control.errors import INVALID_PARAMETER, IO_FAILURE, ControlError
from pgraft.control.protocol import Args
from pgraft.control.server import DEFAULT_MAX_LINE, ControlServer
from pgraft.core.types import Message, StorageError
from pgraft.node.admin import ADMIN_OPS, Promoter, lead_alone
from pgraft.node.config import RELOADABLE, ConfigInvalid, NodeConfig, load_config
from pgraft.node.ops import DATA_OPS, Op
from pgraft.node.reports import REPORT_OPS
from pgraft.node.runtime import Node
from pgraft.node.wiring import Backend
from pgraft.transport import PeerHello

log = logging.getLogger("pgraft.node")

HANDLERS: dict[str, Op] = {**REPORT_OPS, **DATA_OPS, **ADMIN_OPS}
PARENT_POLL_S = 0.5


class NodeApp:
    def __init__(
        self,
        config: NodeConfig,
        config_path: Path | None,
        parent_pid: int | None,
        secret: bytes | None,
        extra_ops: dict[str, Op] | None = None,
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._parent_pid = parent_pid
        self._stop = asyncio.Event()
        self._failure: StorageError | None = None
        self.backend = Backend(config, secret, self._deliver, self._accept)
        self.node = Node(config, self.backend)
        self.node.promote = Promoter(self.node).run_once
        self._ops = {**HANDLERS, **(extra_ops or {})}
        # A request line carries an entry JSON-escaped (up to 6 bytes per byte).
        max_line = max(DEFAULT_MAX_LINE, 6 * config.max_entry_bytes + (64 << 10))
        self.control = ControlServer(config.socket_path, self.dispatch, max_line=max_line)

    def _deliver(self, messages: list[Message]) -> None:
        self.node.deliver(messages)

    def _accept(self, hello: PeerHello) -> bool:
        mine = self.backend.cluster_id
        if mine != 0 and hello.cluster_id == mine:
            return True
        if not hello.inbound:
            accepted = mine != 0 and hello.node_id in self.backend.storage.conf_state.learners
            if not accepted:
                log.warning(
                    "node %d refuses node %d: it belongs to cluster %x, not ours (%x)",
                    self.config.node_id,
                    hello.node_id,
                    hello.cluster_id,
                    mine,
                )
            return accepted
        return self.node.offer_adoption(hello.cluster_id, hello.node_id)

    async def dispatch(self, op: str, args: Args) -> object:
        handler = self._ops.get(op)
        if handler is None:
            raise ControlError(INVALID_PARAMETER, f"unknown op {op!r}")
        try:
            return await handler(self.node, args)
        except StorageError as exc:  # damage found while serving a read: fail-stop
            self.node.fail_stop(exc)
            self._failure = exc
            self.request_stop("storage failure")
            raise ControlError(IO_FAILURE, f"storage failure: {exc}") from None

    def request_stop(self, why: str) -> None:
        if not self._stop.is_set():
            log.info("node %d stopping: %s", self.config.node_id, why)
            self._stop.set()

    def reload(self) -> None:
        if self._config_path is None:
            return
        try:
            new = load_config(self._config_path)
        except ConfigInvalid as exc:
            log.error("node %d ignores SIGHUP: %s", self.config.node_id, exc)
            return
        changed = {
            k for k in new.__dataclass_fields__ if getattr(new, k) != getattr(self.config, k)
        }
        for key in sorted(changed - RELOADABLE):
            log.warning(
                "node %d: config key %r changed; takes effect after a restart",
                self.config.node_id,
                key,
            )
        apply = {k: getattr(new, k) for k in changed & RELOADABLE}
        if not apply:
            return
        self.config = self.config.with_changes(**apply)
        self.node.config = self.config
        if "debug" in apply:
            self.node.set_debug(self.config.debug)
        if apply.keys() & {"heartbeat_ms", "election_timeout_ms"}:
            self.node.retime()
        log.info(
            "node %d reloaded its configuration: %s",
            self.config.node_id,
            ", ".join(f"{k}={v}" for k, v in sorted(apply.items())),
        )

    async def _report_health(self) -> None:
        """Every ``health_period_ms``: one status sentence (INFO while no leader is
        known, DEBUG otherwise, so a healthy node's log stays quiet)."""
        while not self._stop.is_set():
            await asyncio.sleep(self.config.health_period_ms / 1000)
            node = self.node
            if node.raw is None:
                continue
            st = node.raw.status()
            level = logging.INFO if node.leader == 0 else logging.DEBUG
            log.log(
                level,
                "node %d health: %s in term %d, leader %d, commit %d, applied %d, "
                "%d proposals waiting",
                self.config.node_id,
                st.role.name.lower(),
                st.term,
                node.leader,
                node.committed.mark,
                node.applied.mark,
                node.proposals.pending(),
            )

    async def _watch_parent(self) -> None:
        assert self._parent_pid is not None
        original_ppid = os.getppid()
        while not self._stop.is_set():
            await asyncio.sleep(PARENT_POLL_S)
            gone = False
            try:
                os.kill(self._parent_pid, 0)
            except ProcessLookupError:
                gone = True
            except PermissionError:
                pass
            if gone or os.getppid() != original_ppid:
                self.request_stop(f"parent process {self._parent_pid} went away")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.node.set_debug(self.config.debug)
        try:
            await self.backend.start()
            bootstrapping: asyncio.Task[None] | None = None
            if self.backend.initialized:
                self.node.start_core()
            elif self.config.bootstrap:
                self.node.initialize()
                bootstrapping = asyncio.create_task(lead_alone(self.node, 60.0))
            else:
                log.info(
                    "node %d is not initialized: waiting for pgraft_init() or to be added "
                    "to a cluster (pid %d)",
                    self.config.node_id,
                    os.getpid(),
                )
            await self.control.start()
            log.info(
                "node %d running (pid %d), peer port %d, control socket %s",
                self.config.node_id,
                os.getpid(),
                self.config.port,
                self.config.socket_path,
            )
            driver = asyncio.create_task(self.node.run())
            watchers: list[asyncio.Task[Any]] = [
                asyncio.create_task(self._stop.wait()),
                asyncio.create_task(self._report_health()),
            ]
            if self._parent_pid is not None:
                watchers.append(asyncio.create_task(self._watch_parent()))
            await asyncio.wait([driver, *watchers], return_when=asyncio.FIRST_COMPLETED)
            self.node.stop()
            helpers = [*watchers, *([bootstrapping] if bootstrapping else [])]
            for w in helpers:
                w.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await driver  # re-raises a driver failure (fail-stop)
            if self._failure is not None:
                raise self._failure
            return 0
        finally:
            with contextlib.suppress(Exception):
                await self.control.close()
            await self.backend.close()
            log.info("node %d stopped (pid %d)", self.config.node_id, os.getpid())
