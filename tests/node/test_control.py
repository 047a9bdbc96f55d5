"""The control API: wire format, pipelining, socket permissions and error codes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest
from nodeharness import Cluster, NodeProc

from pgraft.control.client import AsyncControlClient
from pgraft.control.errors import ControlError
from pgraft.control.protocol import Args
from pgraft.control.server import ControlServer


def raw_exchange(path: str, lines: list[bytes]) -> list[dict[str, object]]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(b"".join(lines))
        f = s.makefile("rb")
        return [json.loads(f.readline()) for _ in lines]


def test_server_answers_pipelined_requests_in_order_and_socket_is_private() -> None:
    async def handler(op: str, args: Args) -> object:
        if op == "sleep":
            await asyncio.sleep(args.integer("ms") / 1000)
            return args.integer("ms")
        raise ControlError("22023", f"unknown op {op!r}")

    async def scenario(path: Path) -> None:
        server = ControlServer(path, handler, max_inflight=4)
        await server.start()
        try:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            client = await AsyncControlClient.connect(path)
            delays = [50, 1, 30, 0, 20, 5, 0, 40]
            await client.send([("sleep", {"ms": d}) for d in delays] + [("nope", {})])
            assert [await client.receive() for _ in delays] == delays
            with pytest.raises(ControlError) as exc:
                await client.receive()
            assert exc.value.code == "22023"
            await client.close()
        finally:
            await server.close()
        assert not path.exists()

    with tempfile.TemporaryDirectory(prefix="pgc-", dir="/tmp") as d:
        asyncio.run(scenario(Path(d) / "c.sock"))


def test_socket_path_longer_than_sun_path(cluster: Cluster) -> None:
    deep = cluster.root / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    n = cluster.add(1, control_socket=str(deep / "pgraft.sock"))
    assert len(n.socket) > 108
    assert n.call("init") is True
    assert stat.S_IMODE(os.stat(n.socket).st_mode) == 0o600

    async def pipelined() -> list[object]:
        client = await AsyncControlClient.connect(n.socket)
        await client.send([("log_append", {"term": 0, "data": f"x{i}"}) for i in range(5)])
        replies = [await client.receive() for _ in range(5)]
        await client.close()
        return replies

    indexes = asyncio.run(pipelined())
    assert indexes == sorted(indexes) and len(set(indexes)) == 5


@pytest.fixture
def node(cluster: Cluster) -> NodeProc:
    (n,) = cluster.form(1, max_entry_bytes=1024)
    return n


def test_error_codes_of_bad_requests(node: NodeProc) -> None:
    cases = [
        (b"not json\n", "22023"),
        (b"[1, 2]\n", "22023"),
        (b'{"args": {}}\n', "22023"),
        (b'{"op": "no_such_op"}\n', "22023"),
        (b'{"op": "log_append", "args": {"term": 0}}\n', "22004"),
        (b'{"op": "log_append", "args": {"term": null, "data": "x"}}\n', "22004"),
        (b'{"op": "log_append", "args": {"term": "1", "data": "x"}}\n', "22023"),
        (b'{"op": "log_append", "args": {"term": -1, "data": "x"}}\n', "22003"),
        (b'{"op": "log_commit", "args": {"index": 0}}\n', "22003"),
        (b'{"op": "log_commit", "args": {"index": 999999}}\n', "22023"),
        (b'{"op": "add_node", "args": {"node_id": 2, "address": "h", "port": 70000}}\n', "22003"),
        (b'{"op": "add_node", "args": {"node_id": 1, "address": "h", "port": 7}}\n', "42710"),
        (b'{"op": "remove_node", "args": {"node_id": 5}}\n', "42704"),
        (b'{"op": "set_debug", "args": {"enabled": 1}}\n', "22023"),
    ]
    replies = raw_exchange(node.socket, [line for line, _ in cases])
    for (line, code), reply in zip(cases, replies, strict=True):
        assert "error" in reply, line
        err = reply["error"]
        assert isinstance(err, dict)
        assert err["code"] == code, (line, err)
        assert err["message"]


def test_entry_too_large(node: NodeProc) -> None:
    with pytest.raises(ControlError) as exc:
        node.call("log_append", term=0, data="y" * 2048)
    assert exc.value.code == "54000"
    assert node.call("log_append", term=0, data="small") > 0


def test_uninitialized_node_says_so(cluster: Cluster) -> None:
    n = cluster.add(1)
    assert n.call("ping")["node_id"] == 1
    assert n.call("cluster_status")["state"] == "uninitialized"
    assert n.call("leader") == 0
    assert n.call("is_leader") is False
    for op, args in [
        ("log_append", {"term": 0, "data": "x"}),
        ("kv_get", {"key": "k"}),
        ("sync_with_leader", {}),
    ]:
        with pytest.raises(ControlError) as exc:
            n.call(op, **args)
        assert exc.value.code == "55000"
        assert "pgraft_init" in exc.value.message
    assert n.call("init") is True
    assert n.call("init") is True  # idempotent


def test_status_reports(node: NodeProc) -> None:
    index = node.call("log_append", term=0, data="hello")
    assert node.call("log_commit", index=index) is True
    assert node.call("log_apply", index=index) is True
    stats = node.call("log_stats")
    assert stats["last_index"] >= index and stats["last_applied"] >= index
    assert set(stats) == {"log_size", "first_index", "last_index", "commit_index", "last_applied"}
    status = node.call("cluster_status")
    assert status["state"] == "leader" and status["leader_id"] == 1
    assert status["current_term"] == node.call("term") >= 1
    (row,) = node.call("nodes")
    assert row["node_id"] == 1 and row["is_leader"] is True and row["role"] == "voter"
    assert node.call("queue_status")["pending_proposals"] == 0
    assert node.call("replication_status") == []
    assert node.call("set_debug", enabled=True) is True
    assert node.call("sync_with_leader") >= index
