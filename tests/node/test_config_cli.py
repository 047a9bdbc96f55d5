"""Configuration validation, process lifecycle options and the ``pgraft`` CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nodeharness import Cluster, free_port, wait_until

from pgraft.cli.main import cli
from pgraft.node.config import ConfigInvalid, NodeConfig, parse_config

BASE: dict[str, Any] = {
    "node_id": 1,
    "cluster_name": "c1",
    "address": "127.0.0.1",
    "port": 7001,
    "data_dir": "/tmp/unused",
}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"bogus": 1}, "bogus"),
        ({"port": "7001"}, "port"),
        ({"debug": 1}, "debug"),
        ({"node_id": True}, "node_id"),
        ({"node_id": 0}, "node_id"),
        ({"port": 70000}, "port"),
        ({"heartbeat_ms": 0}, "heartbeat_ms"),
        ({"election_timeout_ms": 100, "heartbeat_ms": 100}, "election_timeout_ms"),
        ({"pg_port": 7001}, "port"),
        ({"cluster_name": ""}, "cluster_name"),
        ({"tls_cert": "/x.pem"}, "tls_cert"),
    ],
)
def test_invalid_config_names_the_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigInvalid, match=f"'{key}'"):
        parse_config({**BASE, **change})


def test_missing_required_key() -> None:
    raw = dict(BASE)
    del raw["data_dir"]
    with pytest.raises(ConfigInvalid, match="'data_dir': missing"):
        parse_config(raw)


def test_defaults_and_timing() -> None:
    c = parse_config(BASE)
    assert (c.heartbeat_ms, c.election_timeout_ms, c.bootstrap) == (1000, 5000, False)
    assert c.socket_path == Path("/tmp/unused/pgraft.sock")
    tick_ms, hb, el = c.timing()
    assert tick_ms * hb == 1000 and tick_ms * el == 5000 and el >= 10
    fast = NodeConfig(**{**BASE, "heartbeat_ms": 50, "election_timeout_ms": 150})
    assert fast.timing() == (15, 3, 10)


def run_node(tmp_path: Path, config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "node.json"
    path.write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, "-m", "pgraft.node", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_exits_2_on_bad_config(tmp_path: Path) -> None:
    res = run_node(tmp_path, {**BASE, "data_dir": str(tmp_path), "pg_port": 7001})
    assert res.returncode == 2
    assert "'port'" in res.stderr and "PostgreSQL" in res.stderr
    res = run_node(tmp_path, {**BASE, "data_dir": str(tmp_path), "heartbeat_ms": "fast"})
    assert res.returncode == 2
    assert "'heartbeat_ms'" in res.stderr


def test_node_exits_when_its_parent_goes_away(cluster: Cluster) -> None:
    n = cluster.add(1, start=False)
    n.write_config()
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgraft.node",
                "--config",
                str(n.config_path),
                "--parent-pid",
                str(parent.pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(lambda: n.call("ping"), what="the node to start")
        assert proc.poll() is None
    finally:
        parent.kill()
        parent.wait(10)
    try:
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    _, err = proc.communicate(timeout=10)
    assert "parent process" in err


def test_bootstrap_flag_starts_a_leader(cluster: Cluster) -> None:
    n = cluster.add(1, bootstrap=True)
    wait_until(lambda: n.call("is_leader"), what="the bootstrapped node to lead")


def test_cli_status_log_and_kv(cluster: Cluster) -> None:
    nodes = cluster.form(2)
    runner = CliRunner()
    sock = ["--socket", nodes[1].socket]
    res = runner.invoke(cli, [*sock, "append", "via-cli"])
    assert res.exit_code == 0, res.output
    index = int(res.output)
    res = runner.invoke(cli, [*sock, "status"])
    assert res.exit_code == 0, res.output
    for text in ("leader", "follower", "voter", f"127.0.0.1:{nodes[0].port}", "term"):
        assert text in res.output
    res = runner.invoke(cli, [*sock, "--json", "status"])
    data = json.loads(res.output)
    assert {r["node_id"] for r in data["nodes"]} == {1, 2}
    assert data["status"]["leader_id"] == 1
    res = runner.invoke(cli, [*sock, "--json", "log", "--from", str(index)])
    assert json.loads(res.output)[0]["data"] == "via-cli"
    assert runner.invoke(cli, [*sock, "kv", "put", "color", "blue"]).exit_code == 0
    res = runner.invoke(cli, [*sock, "kv", "get", "color"])
    assert res.output.strip() == "blue"
    res = runner.invoke(cli, [*sock, "remove-node", "7"])
    assert res.exit_code == 1 and "42704" in res.output
    res = runner.invoke(cli, ["--socket", "/tmp/no-such-pgraft.sock", "status"])
    assert res.exit_code == 3


@pytest.mark.parametrize("mode", ["config", "flags"])
def test_cli_run_starts_a_node(tmp_path: Path, mode: str) -> None:
    short = Path(os.path.join("/tmp", f"pgcli-{os.getpid()}-{time.monotonic_ns()}"))
    short.mkdir()
    port = free_port()
    config = {
        **BASE,
        "port": port,
        "data_dir": str(short),
        "bootstrap": True,
        "heartbeat_ms": 50,
        "election_timeout_ms": 500,
    }
    path = tmp_path / "node.json"
    path.write_text(json.dumps(config))
    pgraft = str(Path(sys.executable).parent / "pgraft")
    argv = {
        "config": [pgraft, "run", "--config", str(path)],
        "flags": [
            pgraft,
            "run",
            "--node-id",
            "1",
            "--port",
            str(port),
            "--data-dir",
            str(short),
            "--bootstrap",
        ],
    }[mode]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = str(short / "pgraft.sock")
        runner = CliRunner()

        def leads() -> bool:
            res = runner.invoke(cli, ["--socket", sock, "--json", "status"])
            return res.exit_code == 0 and json.loads(res.output)["status"]["state"] == "leader"

        wait_until(leads, what="pgraft run to serve as leader")
        proc.terminate()
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(short, ignore_errors=True)
