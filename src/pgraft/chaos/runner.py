"""One chaos run: set up, work under faults, heal, read back, check, report.

Theory of operation
-------------------
1. Make a private network namespace (when ``ip netns`` works; otherwise network faults
   are left out and the report says so) and a work directory; give the disk node a
   tmpfs of its own.
2. Start the nodes, bootstrap node 1, add the others.
3. Run the workload, the prober and the nemesis together; after the requested duration
   the nemesis finishes (heals and waits for recovery from) its current fault, then the
   clients stop.
4. Heal everything once more, restart what is down, re-add what was removed, then wait
   until every node has applied the same index (bounded; ``settle``).
5. Read every node's log back, check the key-value history for linearizability and
   the appends against the logs, and build the report.

Clean-up (processes, mounts, namespace, work directory unless kept) happens whatever
goes wrong.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pgraft.chaos import netns
from pgraft.chaos.cluster import DEFAULT_LAUNCHER, Cluster
from pgraft.chaos.faults import ALL_KINDS, NETWORK_KINDS, Nemesis, Prober
from pgraft.chaos.history import History
from pgraft.chaos.linearizability import check
from pgraft.chaos.logcheck import LogEntry, NodeLog, check_log
from pgraft.chaos.report import Report, build_report
from pgraft.chaos.workload import Workload, WorkloadConfig
from pgraft.control.errors import ControlError

SETTLE_LIMIT_S = 90.0
STUCK_S = 30.0
READ_PAGE = 1000


@dataclass(frozen=True)
class RunConfig:
    duration_s: float
    seed: int
    nodes: int = 5
    kinds: tuple[str, ...] = ALL_KINDS
    launcher: Sequence[str] = DEFAULT_LAUNCHER
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    heartbeat_ms: int = 100
    election_timeout_ms: int = 1000
    hold_s: tuple[float, float] = (1.0, 4.0)
    calm_s: tuple[float, float] = (0.5, 2.0)
    workdir: Path | None = None
    keep: bool = False
    check_budget_s: float = 120.0
    history_path: Path | None = None  # write the history here as JSON lines
    settle_s: float = SETTLE_LIMIT_S  # how long the healed nodes get to converge


async def run(config: RunConfig) -> Report:
    rng = random.Random(config.seed)
    network = netns.Network() if netns.available() else None
    kinds = config.kinds
    if network is None:
        kinds = tuple(k for k in kinds if k not in NETWORK_KINDS)
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="pgraft-chaos-"))
    cluster = Cluster(
        workdir,
        config.nodes,
        prefix=network.exec_prefix() if network else [],
        launcher=config.launcher,
        heartbeat_ms=config.heartbeat_ms,
        election_timeout_ms=config.election_timeout_ms,
        disk_node=config.nodes if "disk" in kinds else None,
    )
    try:
        if network is not None:
            network.create()
        cluster.mount_disks()
        await cluster.bootstrap()
        history = History()
        workload = Workload(cluster, history, random.Random(config.seed + 2), config.workload)
        prober = Prober(cluster, random.Random(config.seed + 1))
        nemesis = Nemesis(
            cluster, network, rng, prober, kinds, hold_s=config.hold_s, calm_s=config.calm_s
        )
        stop_faults, stop_work = asyncio.Event(), asyncio.Event()
        started = time.monotonic()
        work = [
            asyncio.create_task(workload.run(stop_work)),
            asyncio.create_task(prober.run(stop_work)),
        ]
        faults = asyncio.create_task(nemesis.run(stop_faults))
        await asyncio.sleep(config.duration_s)
        stop_faults.set()
        await asyncio.wait_for(faults, timeout=300.0)  # the last fault heals, recovers
        stop_work.set()
        await asyncio.wait_for(asyncio.gather(*work), timeout=60.0)
        elapsed = time.monotonic() - started
        await nemesis.heal()
        settled = await settle(cluster, nemesis, config.settle_s)
        logs = await read_logs(cluster)
        ops = history.ops()
        if config.history_path is not None:
            config.history_path.write_text("".join(f"{line}\n" for line in history.dump()))
        checked = time.monotonic()
        lin = check(ops, time_budget_s=config.check_budget_s)
        log_result = check_log(ops, logs)
        return build_report(
            seed=config.seed,
            duration_s=elapsed,
            nodes=config.nodes,
            partitions="netns + ip-rule blackhole" if network else "none (no ip netns)",
            ops=ops,
            faults=nemesis.records,
            disk_stops=nemesis.disk_stops,
            probes=(prober.attempts, len(prober.acks)),
            problems=[*nemesis.problems, *([settled] if settled else [])],
            lin=lin,
            log=log_result,
            check_s=time.monotonic() - checked,
        )
    finally:
        cluster.stop_all()
        cluster.unmount_disks()
        if network is not None:
            network.destroy()
        if not config.keep:
            shutil.rmtree(workdir, ignore_errors=True)


async def settle(cluster: Cluster, nemesis: Nemesis, limit_s: float = SETTLE_LIMIT_S) -> str:
    """After the final heal, wait until every node answers and all have applied the same
    index; "" when they have, else each node's last answer and state.

    A node may still be starting, catching up, or stopping late on the disk that was
    full (see ``faults``): every round frees the disks and restarts whatever is down
    (``Nemesis.revive``, which records unexpected exits as problems), then asks every
    node at once; rounds back off from 0.25 s to 2 s for ``limit_s``. A process
    that keeps running without listening on its control socket for ``STUCK_S`` is
    killed and restarted (``Nemesis.unstick`` says whether that is a problem). Only
    liveness is waited for: divergent logs or lost acknowledgements are the checkers'
    business and still fail the run."""
    deadline = time.monotonic() + limit_s
    pause = 0.25
    deaf_since: dict[int, float] = {}
    while True:
        nemesis.free_disks()
        nemesis.revive()
        answers = await asyncio.gather(*(_applied(cluster, i) for i in cluster.ids))
        seen = dict(zip(cluster.ids, answers, strict=True))
        if len(set(answers)) == 1 and isinstance(answers[0], int):
            return ""
        now = time.monotonic()
        for node_id, answer in seen.items():
            deaf = isinstance(answer, ConnectionRefusedError | FileNotFoundError)
            if not (deaf and cluster.nodes[node_id].running):
                deaf_since.pop(node_id, None)
            elif now - deaf_since.setdefault(node_id, now) > STUCK_S:
                nemesis.unstick(node_id)
                deaf_since.pop(node_id)
        if now >= deadline:
            break
        await asyncio.sleep(pause)
        pause = min(2.0, pause * 1.5)
    states = [
        f"node {i}: running {n.running}, started {n.starts}x, exits {n.exits[-3:]},"
        f" log: {n.log_tail(1)!r}"
        for i, n in cluster.nodes.items()
        if not isinstance(seen[i], int)
    ]
    shown = {i: a if isinstance(a, int) else repr(a) for i, a in seen.items()}
    return f"nodes did not converge in {limit_s:.0f} s: {shown}; {'; '.join(states)}"


async def _applied(cluster: Cluster, node_id: int) -> int | Exception:
    """The node's applied index, or what went wrong asking for it."""
    try:
        stats = await cluster.call(node_id, "log_stats", timeout=3.0)
        return int(stats["last_applied"])
    except Exception as exc:  # a node still starting: the caller asks again
        return exc


async def read_logs(cluster: Cluster) -> list[NodeLog]:
    """Every reachable node's user log, read in pages up to its applied index (a reply
    holds at most ``READ_PAGE`` entries and a bounded number of bytes)."""
    logs = []
    for node_id in cluster.ids:
        try:
            stats = await cluster.call(node_id, "log_stats", timeout=5.0)
            applied = int(stats["last_applied"])
            entries: list[LogEntry] = []
            lo = 1
            while lo <= applied:
                page = await cluster.call(
                    node_id,
                    "log_read",
                    timeout=10.0,
                    from_index=lo,
                    to_index=applied,
                    limit=READ_PAGE,
                )
                if not page:
                    break
                entries += [LogEntry(int(e["index"]), int(e["term"]), str(e["data"])) for e in page]
                lo = entries[-1].index + 1  # a short page may only mean the size cap
        except (ControlError, OSError, TimeoutError, ValueError):
            continue
        logs.append(NodeLog(node_id, tuple(entries), applied))
    return logs
