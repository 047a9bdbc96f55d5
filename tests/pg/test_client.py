"""pgraft_call's error paths against a fake node, and the supervisor's refusals.

The fake node is a Unix-socket server run by the test at the data directory's
``pgraft.sock`` of a server whose supervisor is disabled (``worker_enabled = off``),
so the C client meets exactly the replies we choose: errors with SQLSTATEs, garbage,
truncated and oversized lines, and silence (for statement_timeout and cancel).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakenode import FakeNodeBase, fake_node_server
from .pgharness import Cluster, Server, wait_for

pytestmark = pytest.mark.pg

HUGE = 65 * 1024 * 1024  # above the client's 64 MiB reply limit


def _reply_for(op: str) -> bytes | None:
    """The fake node's scripted reply to ``op``; None means never answer."""
    replies: dict[str, bytes] = {
        "ok": b'{"ok": {"a": [1, "x"], "b": null}}\n',
        "scalar": b'{"ok": 42}\n',
        "err": b'{"error": {"code": "PR003", "message": "term mismatch: leader is in term 7"}}\n',
        "badcode": b'{"error": {"code": "zz", "message": "odd code"}}\n',
        "garbage": b"this is not json\n",
        "notobj": b"[1, 2]\n",
        "neither": b'{"foo": 1}\n',
        "trunc": b'{"ok": 1',
    }
    if op == "hang":
        return None
    if op == "huge":
        return b"x" * HUGE
    return replies.get(op, b'{"error": {"code": "22023", "message": "unknown op"}}\n')


class FakeNode(FakeNodeBase):
    """Serves one scripted reply per connection."""

    def __init__(self, path: Path) -> None:
        self.requests: list[dict[str, object]] = []
        super().__init__(path)

    def handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            request = json.loads(data.split(b"\n", 1)[0])
            self.requests.append(request)
            reply = _reply_for(str(request["op"]))
            if reply is None:
                conn.settimeout(60)
                conn.recv(1)  # wait until the client goes away
                return
            try:
                conn.sendall(reply)
            except OSError:
                return


@pytest.fixture(scope="module")
def fake(pg_env: None) -> Iterator[tuple[Server, FakeNode]]:
    """One server (supervisor disabled) and the fake node, shared by this module's tests."""
    with fake_node_server(FakeNode) as pair:
        yield pair


def test_request_shape_and_ok_reply(fake: tuple[Server, FakeNode]) -> None:
    s, node = fake
    reply = s.scalar("SELECT pgraft_call('ok', '{\"k\": \"v\\nw\"}')")
    assert reply == '{"a": [1, "x"], "b": null}'
    assert node.requests[-1] == {"op": "ok", "args": {"k": "v\nw"}}
    assert s.scalar("SELECT pgraft_call('scalar', NULL)") == "42"
    assert node.requests[-1] == {"op": "scalar", "args": {}}


def test_error_reply_raises_its_sqlstate(fake: tuple[Server, FakeNode]) -> None:
    s, _ = fake
    err = s.error("SELECT pgraft_call('err')")
    assert (err.sqlstate, err.message) == ("PR003", "term mismatch: leader is in term 7")
    assert s.error("SELECT pgraft_call('badcode')").sqlstate == "XX000"


@pytest.mark.parametrize(
    ("op", "sqlstate", "fragment"),
    [
        ("garbage", "22P02", "invalid input syntax for type json"),
        ("notobj", "08P01", "not a JSON object"),
        ("neither", "08P01", "neither"),
        ("trunc", "08006", "not reachable"),
        ("huge", "54000", "exceeds"),
    ],
)
def test_bad_replies_are_clean_errors(
    fake: tuple[Server, FakeNode], op: str, sqlstate: str, fragment: str
) -> None:
    s, _ = fake
    err = s.error(f"SELECT pgraft_call('{op}')")
    assert err.sqlstate == sqlstate
    assert fragment in err.stderr
    assert s.scalar("SELECT 1") == "1"  # the server survived


def test_null_op_and_non_object_args(fake: tuple[Server, FakeNode]) -> None:
    s, _ = fake
    assert s.error("SELECT pgraft_call(NULL)").sqlstate == "22004"
    assert s.error("SELECT pgraft_call('ok', '[1]')").sqlstate == "22023"


def test_status_entry_point_refuses_mutating_ops(fake: tuple[Server, FakeNode]) -> None:
    s, node = fake
    before = len(node.requests)
    for op in ("init", "log_append", "add_node", "kv_put"):
        assert s.error(f"SELECT pgraft_call_status('{op}')").sqlstate == "42501"
    assert len(node.requests) == before


def test_statement_timeout_interrupts_a_waiting_call(fake: tuple[Server, FakeNode]) -> None:
    s, _ = fake
    err = s.error("SET statement_timeout = '300ms'; SELECT pgraft_call('hang')", timeout=30)
    assert err.sqlstate == "57014"


def test_cancel_interrupts_a_waiting_call(fake: tuple[Server, FakeNode]) -> None:
    s, _ = fake
    result: dict[str, BaseException | None] = {}

    def run() -> None:
        try:
            s.psql("SELECT pgraft_call('hang')", timeout=30)
            result["err"] = None
        except BaseException as exc:
            result["err"] = exc

    t = threading.Thread(target=run)
    t.start()
    query = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE query LIKE '%pgraft_call(''hang'')%' AND pid <> pg_backend_pid()"
    )
    pid = wait_for("the hanging call", lambda: s.scalar(query), timeout=10)
    assert s.scalar(f"SELECT pg_cancel_backend({pid})") == "t"
    t.join(30)
    err = result["err"]
    assert err is not None and getattr(err, "sqlstate", None) == "57014"


def test_failed_calls_leak_no_descriptors(fake: tuple[Server, FakeNode]) -> None:
    s, _ = fake
    count = "SELECT count(*) FROM pg_ls_dir('/proc/self/fd')"
    calls = "\n".join(
        f"SELECT pgraft_call('{op}');" for op in ["err", "garbage", "trunc", "notobj"] * 5
    )
    hang = "SET statement_timeout = '100ms';\nSELECT pgraft_call('hang');"
    script = f"{count};\n{calls}\n{hang}\n{count};\n"
    out = s.run_script(script)
    numbers = [line for line in out.splitlines() if line.isdigit()]
    assert len(numbers) == 2 and numbers[0] == numbers[1], out


def test_node_down_is_a_clear_error(cluster: Cluster) -> None:
    s = cluster.add(1, settings={"pgraft.worker_enabled": "off"})
    s.psql("CREATE EXTENSION pgraft")
    assert s.worker_state() == "DISABLED"
    err = s.error("SELECT pgraft_get_term()")
    assert err.sqlstate == "08006"
    assert "pgraft node is not reachable" in err.message
    assert "pgraft_get_worker_state()" in err.stderr  # the HINT


def test_raft_port_equal_to_postgres_port_is_refused(cluster: Cluster) -> None:
    s = cluster.add(1, raft_port_is_pg_port=True)
    s.psql("CREATE EXTENSION pgraft")
    wait_for("supervisor verdict", lambda: s.worker_state() == "STOPPED", timeout=10)
    reason = s.scalar("SELECT last_exit FROM pgraft_get_worker_info()")
    assert "equals PostgreSQL's port" in reason
    assert "equals PostgreSQL's port" in s.log()
    assert s.error("SELECT pgraft_init()").sqlstate == "08006"


def test_unset_raft_port_is_refused(cluster: Cluster) -> None:
    s = cluster.add(1, settings={"pgraft.port": "0"})
    s.psql("CREATE EXTENSION pgraft")
    wait_for("supervisor verdict", lambda: s.worker_state() == "STOPPED", timeout=10)
    assert "pgraft.port is not set" in s.scalar("SELECT last_exit FROM pgraft_get_worker_info()")


def test_settings_are_registered_and_reserved(cluster: Cluster) -> None:
    s = cluster.add(1, settings={"pgraft.worker_enabled": "off"})
    rows = dict(
        (r[0], r[1:])
        for r in s.rows(
            "SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'pgraft.%'"
        )
    )
    assert rows["pgraft.node_id"] == ["1", "", "postmaster"]
    assert rows["pgraft.heartbeat_interval"] == ["100", "ms", "sighup"]
    assert rows["pgraft.election_timeout"] == ["1000", "ms", "sighup"]
    assert rows["pgraft.debug_enabled"] == ["off", "", "sighup"]
    assert rows["pgraft.health_period_ms"] == ["5000", "ms", "postmaster"]
    assert rows["pgraft.python"][0].endswith("python")
    for name in ("address", "port", "cluster_name", "worker_enabled", "data_dir",
                 "secret_file", "tls_cert", "tls_key", "tls_ca", "max_entry_bytes",
                 "snapshot_threshold", "log_retention"):  # fmt: skip
        assert f"pgraft.{name}" in rows
    err = s.error("SET pgraft.no_such_setting = 1")
    assert "pgraft" in err.message


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_worker_enabled_reload_and_no_orphans_after_shutdown(cluster: Cluster) -> None:
    s = cluster.add(1, settings={"pgraft.worker_enabled": "off"})
    s.psql("CREATE EXTENSION pgraft")
    assert s.worker_state() == "DISABLED"
    s.psql("ALTER SYSTEM SET pgraft.worker_enabled = on")
    s.psql("SELECT pg_reload_conf()")
    s.wait_running()
    pid = s.node_pid()
    assert _alive(pid)
    s.psql("ALTER SYSTEM SET pgraft.worker_enabled = off")
    s.psql("SELECT pg_reload_conf()")
    wait_for("DISABLED", lambda: s.worker_state() == "DISABLED")
    wait_for("the node process to end", lambda: not _alive(pid))
    assert s.scalar("SELECT pid IS NULL FROM pgraft_get_worker_info()") == "t"

    s.psql("ALTER SYSTEM SET pgraft.worker_enabled = on")
    s.psql("SELECT pg_reload_conf()")
    s.wait_running()
    pid = s.node_pid()
    s.stop("fast")
    assert not _alive(pid), "a clean shutdown stops the node before the server exits"
    s.start()
    s.wait_running()
    pid = s.node_pid()
    s.stop("immediate")
    wait_for("the node to follow its dead supervisor", lambda: not _alive(pid), timeout=10)


def test_unusable_interpreter_is_retried_with_backoff_and_reported(cluster: Cluster) -> None:
    s = cluster.add(1, settings={"pgraft.python": "'/nonexistent/python3'"})
    s.psql("CREATE EXTENSION pgraft")

    def retried() -> bool:
        rows = s.rows("SELECT state, restarts, last_exit FROM pgraft_get_worker_info()")
        state, restarts, last_exit = rows[0]
        return state == "RESTARTING" and int(restarts) >= 1 and "could not execute" in last_exit

    wait_for("a failed start to be retried", retried, timeout=15)
    assert 'could not execute "/nonexistent/python3"' in s.log()
    assert s.error("SELECT pgraft_get_cluster_status()").sqlstate == "08006"


def test_relative_secret_file_reaches_the_node_as_an_absolute_path(cluster: Cluster) -> None:
    s = cluster.add(
        1, settings={"pgraft.worker_enabled": "off", "pgraft.secret_file": "'raft.secret'"}
    )
    secret = s.data / "raft.secret"
    secret.write_text("correct horse battery staple\n")
    os.chmod(secret, 0o600)
    shutil.chown(secret, "postgres", "postgres")
    s.psql("CREATE EXTENSION pgraft")
    s.psql("ALTER SYSTEM SET pgraft.worker_enabled = on")
    s.psql("SELECT pg_reload_conf()")
    s.wait_running()
    config = json.loads((s.data / "pgraft" / "node.json").read_text())
    assert config["secret_file"] == str(s.data / "raft.secret")
    assert config["control_socket"] == str(s.data / "pgraft.sock")
    assert (config["pg_port"], config["port"], config["node_id"]) == (s.port, s.raft_port, 1)
    assert config["bootstrap"] is False
    assert s.scalar("SELECT pgraft_init()") == "t"
