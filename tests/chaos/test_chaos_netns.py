"""Real partitions in a private network namespace, and the disk filler."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgraft.chaos import netns
from pgraft.chaos.faults import fill

needs_netns = pytest.mark.skipif(
    os.geteuid() != 0 or not netns.available(), reason="needs root and ip netns"
)

PROBE = """
import socket, sys
srv = socket.socket(); srv.bind(("127.0.0.12", 7000)); srv.listen()
for src in sys.argv[1:]:
    c = socket.socket(); c.settimeout(1.0); c.bind((src, 0))
    try:
        c.connect(("127.0.0.12", 7000)); print(src, "ok")
    except OSError:
        print(src, "blocked")
    c.close()
"""


def probe(net: netns.Network, *sources: str) -> dict[str, str]:
    out = subprocess.run(
        [*net.exec_prefix(), sys.executable, "-c", PROBE, *sources],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def net() -> Iterator[netns.Network]:
    network = netns.Network(f"pgraft-chaos-test-{os.getpid()}")
    network.create()
    try:
        yield network
    finally:
        network.destroy()


def test_partition_links_cover_both_directions_between_groups() -> None:
    assert netns.partition_links([[1], [2, 3]]) == {(1, 2), (1, 3), (2, 1), (3, 1)}
    assert netns.partition_links([[1, 2], [3], [4]]) == {
        (1, 3),
        (2, 3),
        (3, 1),
        (3, 2),
        (1, 4),
        (2, 4),
        (4, 1),
        (4, 2),
        (3, 4),
        (4, 3),
    }


def test_node_addresses_are_distinct_loopback_addresses() -> None:
    assert [netns.node_address(i) for i in (1, 2, 5)] == ["127.0.0.11", "127.0.0.12", "127.0.0.15"]
    with pytest.raises(ValueError):
        netns.node_address(0)


@needs_netns
def test_cut_drops_one_direction_until_healed(net: netns.Network) -> None:
    a, c = netns.node_address(1), netns.node_address(3)
    assert probe(net, a, c) == {a: "ok", c: "ok"}
    net.cut([(1, 2)])
    assert net.cut_links == {(1, 2)}
    assert probe(net, a, c) == {a: "blocked", c: "ok"}
    net.heal()
    assert probe(net, a, c) == {a: "ok", c: "ok"}


@needs_netns
def test_reverse_cut_breaks_the_handshake_too(net: netns.Network) -> None:
    """TCP needs both directions: cutting 2 -> 1 stops 1 connecting to 2."""
    a = netns.node_address(1)
    net.cut([(2, 1)])
    assert probe(net, a) == {a: "blocked"}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a tmpfs")
def test_fill_leaves_no_space(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mount], check=True)
    try:
        fill(mount / "filler")
        with pytest.raises(OSError), open(mount / "more", "wb") as f:
            f.write(b"x" * 8192)
            f.flush()
        (mount / "filler").unlink()
        (mount / "more").write_bytes(b"x" * 8192)
    finally:
        subprocess.run(["umount", mount], check=True)
