"""``pgraft``: the operator's command line.

Theory of operation
-------------------
``pgraft run`` starts a node in the foreground (the same code as ``python -m
pgraft.node``). Every other command is a thin client of a running node's control socket
(``--socket``, or ``$PGRAFT_SOCKET``): it sends one request, prints the answer as a rich
table or JSON, and exits 0; a control error prints ``ERROR <code>: <message>`` on stderr
and exits 1; an unreachable socket exits 3.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from pgraft.control.client import ControlClient
from pgraft.control.errors import ControlError

EXIT_ERROR = 1
EXIT_UNREACHABLE = 3


def _fail(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _call(ctx: click.Context, op: str, **args: Any) -> Any:
    path = ctx.obj["socket"]
    if not path:
        _fail(EXIT_ERROR, "no control socket: pass --socket PATH or set PGRAFT_SOCKET")
    try:
        with ControlClient(path, timeout=ctx.obj["timeout"]) as client:
            return client.call(op, **args)
    except ControlError as err:
        _fail(EXIT_ERROR, f"ERROR {err.code}: {err.message}")
    except OSError as exc:
        _fail(EXIT_UNREACHABLE, f"cannot reach the node at {path}: {exc}")


def _print(ctx: click.Context, value: object) -> None:
    click.echo(json.dumps(value) if ctx.obj["json"] else str(value))


@click.group()
@click.option("--socket", "socket_path", envvar="PGRAFT_SOCKET", help="node control socket")
@click.option("--timeout", default=60.0, show_default=True, help="seconds to wait for a reply")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
@click.pass_context
def cli(ctx: click.Context, socket_path: str | None, timeout: float, as_json: bool) -> None:
    """Raft consensus for PostgreSQL clusters: run a node or talk to one."""
    ctx.obj = {"socket": socket_path, "timeout": timeout, "json": as_json}


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="node.json")
@click.option("--node-id", type=int, help="without --config: this node's id")
@click.option("--cluster-name", default="pgraft", show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="peer address")
@click.option("--port", type=int, help="without --config: the Raft peer port")
@click.option("--data-dir", type=click.Path(file_okay=False), help="without --config")
@click.option("--bootstrap", is_flag=True, help="with no state: start a one-member cluster")
@click.option("--parent-pid", type=int, default=None, help="exit when this process goes away")
def run(
    config_path: str | None,
    node_id: int | None,
    cluster_name: str,
    address: str,
    port: int | None,
    data_dir: str | None,
    bootstrap: bool,
    parent_pid: int | None,
) -> None:
    """Run a node in the foreground, from --config or from flags."""
    from pgraft.node.__main__ import run_app

    if config_path is not None:
        sys.exit(run_app(config_path, parent_pid))
    if node_id is None or port is None or data_dir is None:
        _fail(2, "pgraft run: give --config, or --node-id, --port and --data-dir")
    config = {
        "node_id": node_id,
        "cluster_name": cluster_name,
        "address": address,
        "port": port,
        "data_dir": data_dir,
        "bootstrap": bootstrap,
    }
    sys.exit(run_app(config, parent_pid))


def _status_table(ctx: click.Context) -> tuple[Table, dict[str, Any], list[dict[str, Any]]]:
    status = _call(ctx, "cluster_status")
    nodes = _call(ctx, "nodes")
    table = Table(
        title=f"node {status['node_id']}: {status['state']}, term {status['current_term']}, "
        f"leader {status['leader_id'] or '-'}"
    )
    for col in ("id", "address", "role", "state", "term", "match", "lag", "last contact"):
        table.add_column(col, justify="right" if col in ("id", "term", "match", "lag") else "left")
    for n in nodes:
        contact = n.get("last_contact_ms")
        table.add_row(
            str(n["node_id"]),
            f"{n['address']}:{n['port']}",
            n["role"],
            n["state"],
            str(status["current_term"]),
            "-" if n.get("match_index") is None else str(n["match_index"]),
            "-" if n.get("lag") is None else str(n["lag"]),
            "-" if contact is None else f"{contact} ms",
        )
    return table, status, nodes


@cli.command()
@click.option("--watch", is_flag=True, help="refresh every --interval seconds")
@click.option("--interval", default=1.0, show_default=True)
@click.option("--count", default=0, help="with --watch: stop after this many refreshes")
@click.pass_context
def status(ctx: click.Context, watch: bool, interval: float, count: int) -> None:
    """Show the cluster's members as this node sees them."""
    console = Console()
    refreshes = 0
    while True:
        table, st, nodes = _status_table(ctx)
        if ctx.obj["json"]:
            click.echo(json.dumps({"status": st, "nodes": nodes}))
        else:
            if watch:
                console.clear()
            console.print(table)
        refreshes += 1
        if not watch or (count and refreshes >= count):
            return
        time.sleep(interval)


@cli.command("log")
@click.option("--from", "from_index", default=1, show_default=True)
@click.option("--to", "to_index", default=0, help="last index (0: up to the end)")
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def log_cmd(ctx: click.Context, from_index: int, to_index: int, limit: int) -> None:
    """Read replicated log entries."""
    if to_index == 0:
        to_index = _call(ctx, "log_stats")["last_index"]
    rows = _call(ctx, "log_read", from_index=from_index, to_index=to_index, limit=limit)
    if ctx.obj["json"]:
        click.echo(json.dumps(rows))
        return
    table = Table()
    for col in ("index", "term", "data"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["index"]), str(r["term"]), r["data"])
    Console().print(table)


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Initialize this node (a one-member cluster) unless it already is."""
    _print(ctx, _call(ctx, "init"))


@cli.command("add-node")
@click.argument("node_id", type=int)
@click.argument("address")
@click.argument("port", type=int)
@click.pass_context
def add_node(ctx: click.Context, node_id: int, address: str, port: int) -> None:
    """Add a member (it catches up as a learner, then votes)."""
    _print(ctx, _call(ctx, "add_node", node_id=node_id, address=address, port=port))


@cli.command("remove-node")
@click.argument("node_id", type=int)
@click.pass_context
def remove_node(ctx: click.Context, node_id: int) -> None:
    """Remove a member (the leader too)."""
    _print(ctx, _call(ctx, "remove_node", node_id=node_id))


@cli.command("transfer-leadership")
@click.argument("node_id", type=int)
@click.pass_context
def transfer_leadership(ctx: click.Context, node_id: int) -> None:
    """Hand leadership to another voter."""
    _print(ctx, _call(ctx, "transfer_leadership", node_id=node_id))


@cli.command()
@click.argument("data")
@click.option("--term", default=0, help="fencing term (0: any)")
@click.pass_context
def append(ctx: click.Context, data: str, term: int) -> None:
    """Append DATA to the replicated log; prints its index."""
    _print(ctx, _call(ctx, "log_append", term=term, data=data))


@cli.group()
def kv() -> None:
    """The replicated key-value map."""


@kv.command("get")
@click.argument("key")
@click.pass_context
def kv_get(ctx: click.Context, key: str) -> None:
    """Linearizable read of KEY."""
    res = _call(ctx, "kv_get", key=key)
    if ctx.obj["json"]:
        click.echo(json.dumps(res))
    elif res["value"] is None:
        _fail(EXIT_ERROR, f"{key}: not found")
    else:
        click.echo(res["value"])


@kv.command("put")
@click.argument("key")
@click.argument("value")
@click.pass_context
def kv_put(ctx: click.Context, key: str, value: str) -> None:
    """Set KEY to VALUE; prints the entry's index."""
    _print(ctx, _call(ctx, "kv_put", key=key, value=value))


def main() -> None:
    cli(prog_name="pgraft")
