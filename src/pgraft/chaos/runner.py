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
   until every node has applied the same index (bounded).
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

SETTLE_LIMIT_S = 60.0
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
        settled = await settle(cluster, nemesis)
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


async def settle(cluster: Cluster, nemesis: Nemesis) -> str:
    """Wait until every node answers and all have applied the same index; "" when they
    have, else what each node last said."""
    deadline = time.monotonic() + SETTLE_LIMIT_S
    seen: dict[int, object] = {}
    while time.monotonic() < deadline:
        nemesis.revive()
        for node_id in cluster.ids:
            try:
                stats = await cluster.call(node_id, "log_stats", timeout=2.0)
                seen[node_id] = int(stats["last_applied"])
            except Exception as exc:  # a node still starting: try again
                seen[node_id] = repr(exc)
        if len(set(seen.values())) == 1 and all(isinstance(v, int) for v in seen.values()):
            return ""
        await asyncio.sleep(0.5)
    return f"nodes did not converge: {seen}"


async def read_logs(cluster: Cluster) -> list[NodeLog]:
    """Every reachable node's user log, read in pages up to its applied index."""
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
                entries += [LogEntry(int(e["index"]), int(e["term"]), str(e["data"])) for e in page]
                if len(page) < READ_PAGE:
                    break
                lo = entries[-1].index + 1
        except (ControlError, OSError, TimeoutError, ValueError):
            continue
        logs.append(NodeLog(node_id, tuple(entries), applied))
    return logs
