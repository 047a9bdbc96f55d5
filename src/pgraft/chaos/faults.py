"""The nemesis: faults chosen at random from a seed, applied, held, healed, timed.

Theory of operation
-------------------
One task alternates calm and trouble: wait a little, pick a fault kind, apply it, hold
it for a random while, heal it, then wait for *recovery* -- the time from the heal until
the cluster acknowledges a probe write. Only then does the next fault start, so each
recovery time belongs to one fault. The probes come from a ``Prober`` running all along
(a ``kv_put`` on a key the checked workload never uses, through a random live node,
every 50 ms), which also gives each fault's *outage*: the longest stretch between the
fault's start and its recovery in which no probe was acknowledged. Every random choice
comes from one ``random.Random`` seeded by the run, so a seed names a schedule (process
timing still varies).

Fault kinds:

* ``kill``       -- SIGKILL a node (the leader half of the time), later restart it;
* ``crash``      -- SIGKILL every node at once (a whole-cluster power cut, as far as
  a process can tell: the page cache survives), later restart them all;
* ``pause``      -- SIGSTOP a node (the leader half of the time) for longer than the
  election timeout, then SIGCONT;
* ``partition``  -- a random minority | majority split, both directions;
* ``isolate``    -- the leader alone on one side;
* ``bridge``     -- two pairs that cannot see each other, one node seeing both;
* ``oneway``     -- the leader's inbound or outbound links only;
* ``shift``      -- isolate a follower, then (without healing in between) isolate the
  leader instead, so the follower rejoins with a stale log just as an election starts;
* ``membership`` -- while another node is killed, remove a node, wipe it, start it
  empty and add it back;
* ``disk``       -- fill the disk node's file system so its writes fail (ENOSPC); the
  node must stop without acknowledging anything; then free the space and restart it.
  SQLite keeps writing into its preallocated WAL, so the stop can come late (even after
  the space is back): an exit whose last log line reports a full disk is recorded as a
  disk stop, not a problem, and the node is restarted.

Anything a fault exposes beyond what the checkers see (a node that cannot restart
after its disk filled, say) is recorded as a problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import random
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pgraft.chaos.cluster import Cluster
from pgraft.chaos.netns import Network, partition_links
from pgraft.control.errors import UNKNOWN_NODE, ControlError

NETWORK_KINDS = ("partition", "isolate", "bridge", "oneway", "shift")
PROCESS_KINDS = ("kill", "crash", "pause", "membership")
ALL_KINDS = PROCESS_KINDS + NETWORK_KINDS + ("disk",)
RECOVERY_LIMIT_S = 60.0
DISK_EXIT_WAIT_S = 15
DISK_FULL_SIGNS = ("disk is full", "No space left")
FILLER = "filler"


@dataclass
class FaultRecord:
    kind: str
    targets: list[int]
    started: float
    healed: float = 0.0
    recovery_s: float | None = None  # heal -> first acknowledged probe (None: not in time)
    outage_s: float = 0.0  # longest time without an acknowledged probe, fault to recovery
    note: str = ""


@dataclass
class ProbeLog:
    """When each acknowledged probe write was invoked and acknowledged (monotonic
    seconds); the recovery and outage figures of a report are read off it."""

    acks: list[tuple[float, float]] = field(default_factory=list, kw_only=True)
    attempts: int = field(default=0, kw_only=True)

    async def ack_after(self, since: float, limit_s: float) -> float | None:
        """Seconds from ``since`` to the first ack of a probe invoked after it."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            after = [acked for begun, acked in self.acks if begun >= since]
            if after:
                return min(after) - since
            await asyncio.sleep(0.05)
        return None

    def longest_gap(self, start: float, end: float) -> float:
        """The longest stretch of [start, end] with no probe acknowledged in it."""
        marks = [start, *(a for _, a in self.acks if start < a < end), end]
        return max(b - a for a, b in itertools.pairwise(marks))


@dataclass
class Prober(ProbeLog):
    """Writes a probe key through a random live node every ``period_s``, remembering
    when each acknowledged write was invoked and acknowledged."""

    cluster: Cluster
    rng: random.Random
    period_s: float = 0.05

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            live = self.cluster.live()
            if live:
                self.attempts += 1
                begun = time.monotonic()
                try:
                    await self.cluster.call(
                        self.rng.choice(live),
                        "kv_put",
                        timeout=1.0,
                        key="chaos-probe",
                        value=str(self.attempts),
                    )
                    self.acks.append((begun, time.monotonic()))
                except Exception:  # any failure means "not now"
                    pass
            await asyncio.sleep(self.period_s)


@dataclass
class Nemesis:
    cluster: Cluster
    network: Network | None
    rng: random.Random
    prober: Prober
    kinds: tuple[str, ...]
    hold_s: tuple[float, float] = (1.0, 4.0)
    calm_s: tuple[float, float] = (0.5, 2.0)
    records: list[FaultRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    removed: set[int] = field(default_factory=set)
    disk_stops: list[str] = field(default_factory=list)  # fail-stops on a full disk

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.rng.uniform(*self.calm_s))
            if stop.is_set():
                return
            kind = self.rng.choice(self.kinds)
            record = FaultRecord(kind, [], time.monotonic())
            self.records.append(record)
            try:
                await self._apply(kind, record)
            finally:
                await self.heal()
                record.healed = time.monotonic()
            record.recovery_s = await self.prober.ack_after(record.healed, RECOVERY_LIMIT_S)
            record.outage_s = self.prober.longest_gap(
                record.started, record.healed + (record.recovery_s or 0.0)
            )

    async def heal(self) -> None:
        """Undo everything: links, full disks, paused and dead nodes, removed members."""
        if self.network is not None:
            self.network.heal()
        self.free_disks()
        for node_id in self.cluster.ids:
            if self.cluster.nodes[node_id].paused:
                self.cluster.signal(node_id, signal.SIGCONT)
        self.revive()
        for node_id in sorted(self.removed):
            await self._rejoin(node_id)

    def free_disks(self) -> None:
        """Delete any filler left on a node's own file system."""
        for node in self.cluster.nodes.values():
            if node.disk_mount is not None:
                (node.disk_mount / FILLER).unlink(missing_ok=True)

    def revive(self) -> None:
        """Restart every member that is not running. A node that exited by itself is a
        problem, unless it stopped on a full disk (fail-stop is what it should do)."""
        for node_id in self.cluster.ids:
            node = self.cluster.nodes[node_id]
            code = self.cluster.reap(node_id)
            if code is not None and node_id not in self.removed:
                last = node.log_tail(1)
                if any(sign in last for sign in DISK_FULL_SIGNS):
                    self.disk_stops.append(f"node {node_id} stopped: {last}")
                else:
                    self.problems.append(f"node {node_id} exited with status {code}: {last}")
            if node.proc is None and node_id not in self.removed:
                self.cluster.start(node_id)

    def unstick(self, node_id: int) -> None:
        """Kill a node that runs without answering (``revive`` restarts it). Expected
        only while it is stopping on a full disk; anything else is a problem."""
        last = self.cluster.nodes[node_id].log_tail(1)
        self.cluster.kill(node_id)
        if any(sign in last for sign in DISK_FULL_SIGNS):
            self.disk_stops.append(f"node {node_id} hung stopping, killed: {last}")
        else:
            self.problems.append(f"node {node_id} ran without answering, killed: {last}")

    async def _target(self) -> int:
        if self.rng.random() < 0.5:
            leader = await self.cluster.leader()
            if leader in self.cluster.nodes:
                return leader
        return self.rng.choice(self.cluster.ids)

    async def _hold(self, at_least: float = 0.0) -> None:
        await asyncio.sleep(max(at_least, self.rng.uniform(*self.hold_s)))

    async def _apply(self, kind: str, record: FaultRecord) -> None:
        ids = list(self.cluster.ids)
        self.rng.shuffle(ids)
        match kind:
            case "kill":
                target = await self._target()
                record.targets = [target]
                self.cluster.kill(target)
                await self._hold()
            case "crash":
                record.targets = list(self.cluster.ids)
                for node_id in record.targets:  # all signals first: no one outlives another
                    self.cluster.signal(node_id, signal.SIGKILL)
                for node_id in record.targets:
                    self.cluster.kill(node_id)
                await self._hold()
            case "pause":
                target = await self._target()
                record.targets = [target]
                self.cluster.signal(target, signal.SIGSTOP)
                await self._hold(1.5 * self.cluster.election_timeout_ms / 1000)
            case "partition":
                minority = ids[: (len(ids) - 1) // 2]
                record.targets = sorted(minority)
                self._cut(partition_links([minority, ids[len(minority) :]]))
                await self._hold()
            case "isolate":
                leader = await self.cluster.leader() or ids[0]
                record.targets = [leader]
                self._cut(partition_links([[leader], [i for i in ids if i != leader]]))
                await self._hold()
            case "bridge":
                half = (len(ids) - 1) // 2
                left, right, bridge = ids[:half], ids[half:-1], ids[-1]
                record.targets, record.note = [bridge], f"{sorted(left)} | {sorted(right)}"
                self._cut(partition_links([left, right]))
                await self._hold()
            case "oneway":
                leader = await self.cluster.leader() or ids[0]
                inbound = self.rng.random() < 0.5
                others = [i for i in ids if i != leader]
                record.targets, record.note = [leader], "inbound" if inbound else "outbound"
                self._cut((o, leader) if inbound else (leader, o) for o in others)
                await self._hold()
            case "shift":
                leader = await self.cluster.leader() or ids[0]
                follower = next(i for i in ids if i != leader)
                record.targets = [follower, leader]
                self._cut(partition_links([[follower], [i for i in ids if i != follower]]))
                await self._hold()
                assert self.network is not None
                self.network.heal()
                self._cut(partition_links([[leader], [i for i in ids if i != leader]]))
                await self._hold()
            case "membership":
                await self._membership(ids, record)
            case "disk":
                await self._disk(record)
            case _:
                raise ValueError(f"unknown fault kind {kind!r}")

    def _cut(self, links: Iterable[tuple[int, int]]) -> None:
        if self.network is None:
            raise RuntimeError("network faults need a network namespace")
        self.network.cut(links)

    async def _membership(self, ids: list[int], record: FaultRecord) -> None:
        target, bystander = ids[0], ids[1]
        record.targets, record.note = [target], f"node {bystander} killed meanwhile"
        self.cluster.kill(bystander)
        others = [i for i in self.cluster.ids if i not in (target, bystander)]
        problem = await self._remove(target, others)
        if problem:
            record.note += f"; remove failed: {problem}"
            return
        self.removed.add(target)
        self.cluster.kill(target)
        self.cluster.wipe(target)
        await self._hold()

    async def _remove(self, target: int, via: list[int]) -> str:
        """Remove ``target`` through members in ``via``, retrying for a while (a
        forwarded proposal can be lost in a leader change); "" once it is out."""
        deadline = time.monotonic() + 30.0
        problem = ""
        while time.monotonic() < deadline:
            try:
                await self.cluster.call(
                    self.rng.choice(via),
                    "remove_node",
                    timeout=6.0,
                    node_id=target,
                    timeout_ms=5000,
                )
                return ""
            except ControlError as exc:
                if exc.code == UNKNOWN_NODE:
                    return ""  # an earlier attempt went through
                problem = repr(exc)
            except (OSError, TimeoutError) as exc:
                problem = repr(exc)
            await asyncio.sleep(0.3)
        return problem

    async def _rejoin(self, node_id: int) -> None:
        self.cluster.start(node_id)
        try:
            await self.cluster.wait_ready(node_id)
            members = [i for i in self.cluster.ids if i != node_id]
            await self.cluster.add(node_id, via=members, timeout=90.0)
        except Exception as exc:  # reported
            self.problems.append(f"node {node_id} could not rejoin: {exc!r}")
            return
        self.removed.discard(node_id)

    async def _disk(self, record: FaultRecord) -> None:
        disk = [n for n in self.cluster.nodes.values() if n.disk_mount is not None]
        if not disk:
            raise RuntimeError("the disk fault needs a node with its own file system")
        node = disk[0]
        assert node.disk_mount is not None
        record.targets = [node.node_id]
        filler = node.disk_mount / FILLER
        fill(filler)
        await self._hold()
        code = None
        for _ in range(DISK_EXIT_WAIT_S * 10):  # writes may still fit in reused pages
            code = self.cluster.reap(node.node_id)
            if code is not None:
                break
            await asyncio.sleep(0.1)
        record.note = "node kept running" if code is None else f"node exited with {code}"
        if code is not None:
            self.disk_stops.append(f"node {node.node_id} stopped: {node.log_tail(1)}")
        filler.unlink(missing_ok=True)
        if code is not None:
            self.cluster.start(node.node_id)
            try:
                await self.cluster.wait_ready(node.node_id)
            except Exception as exc:  # reported
                self.problems.append(
                    f"node {node.node_id} did not restart after its disk filled: {exc!r}"
                )


def fill(path: Path, max_chunks: int = 1 << 16) -> None:
    """Write ``path`` until its file system is full (bounded by ``max_chunks``)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            for _ in range(max_chunks):
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
