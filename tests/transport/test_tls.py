"""Mutual TLS: peers with certificates from the cluster CA talk; a certificate from
another CA is refused in either direction. Throwaway certificates come from the
``openssl`` command line tool."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from pgraft.core.types import Heartbeat
from pgraft.transport import TLSContexts

from .helpers import CLUSTER_ID, Node, proxy, settle, wait_until

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        crt,
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
    )
    return key, crt


def _leaf(d: Path, name: str, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    _openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        key,
        "-out",
        csr,
        "-subj",
        f"/CN={name}",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        csr,
        "-CA",
        ca_crt,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-out",
        crt,
        "-days",
        "2",
    )
    return crt, key


def _contexts(leaf: tuple[Path, Path], ca_crt: Path) -> TLSContexts:
    cert, key = leaf
    return TLSContexts.from_files(str(cert), str(key), str(ca_crt))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TLSContexts]:
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_crt = _ca(d, "cluster-ca")
    rogue_key, rogue_crt = _ca(d, "rogue-ca")
    return {
        "node1": _contexts(_leaf(d, "node1", ca_key, ca_crt), ca_crt),
        "node2": _contexts(_leaf(d, "node2", ca_key, ca_crt), ca_crt),
        # A certificate from another CA, which nevertheless trusts the cluster CA.
        "rogue": _contexts(_leaf(d, "rogue", rogue_key, rogue_crt), ca_crt),
        # A properly certified peer that trusts only the rogue CA.
        "distrustful": _contexts(_leaf(d, "node3", ca_key, ca_crt), rogue_crt),
    }


def hb(frm: int, to: int, context: bytes = b"") -> Heartbeat:
    return Heartbeat(CLUSTER_ID, frm, to, 1, 0, context)


def test_mutual_tls_success(pki: dict[str, TLSContexts]) -> None:
    capture = bytearray()

    async def main() -> None:
        async with Node(1, ssl=pki["node1"]) as n1, Node(2, ssl=pki["node2"]) as n2:
            server = await proxy(n2.t.port, capture)
            n1.t.set_peer_address(2, "127.0.0.1", server.sockets[0].getsockname()[1])
            n1.t.send(2, [hb(1, 2, b"very-visible-context")])
            await wait_until(lambda: bool(n2.received))
            big = hb(2, 1, bytes(range(256)) * 8192)  # 2 MiB: many TLS records
            n2.t.send(1, [big])  # over the connection n2 dials back (learned address)
            await wait_until(lambda: bool(n1.received))
            assert n1.received == [big]
            assert n1.t.stats["handshake_failures"] == n2.t.stats["handshake_failures"] == 0
            server.close()

    asyncio.run(main())
    assert len(capture) > 500  # certificates went through the proxy ...
    assert b"pgraft" not in capture and b"very-visible-context" not in capture  # ... encrypted


@pytest.mark.parametrize("intruder", ["rogue", "distrustful"])
def test_untrusted_certificate_refused(pki: dict[str, TLSContexts], intruder: str) -> None:
    async def main() -> None:
        async with (
            Node(1, ssl=pki["node1"]) as n1,
            Node(3, ssl=pki[intruder]) as bad,
            Node(2, ssl=pki["node2"]) as good,
        ):
            bad.t.set_peer_address(1, "127.0.0.1", n1.t.port)
            bad.t.send(1, [hb(3, 1)])
            await wait_until(lambda: bad.t.stats["handshake_failures"] >= 1)
            if intruder == "rogue":  # the listener itself refused the certificate
                await wait_until(lambda: n1.t.stats["handshake_failures"] >= 1)
            good.t.set_peer_address(1, "127.0.0.1", n1.t.port)
            good.t.send(1, [hb(2, 1)])
            await wait_until(lambda: bool(n1.received))
            await settle()
            assert {m.frm for m in n1.received} == {2}

    asyncio.run(main())


def test_plain_peer_cannot_talk_to_tls_listener(pki: dict[str, TLSContexts]) -> None:
    async def main() -> None:
        async with Node(1, ssl=pki["node1"]) as n1, Node(2) as plain:
            plain.t.set_peer_address(1, "127.0.0.1", n1.t.port)
            plain.t.send(1, [hb(2, 1)])
            await wait_until(lambda: n1.t.stats["handshake_failures"] >= 1)
            assert n1.received == []

    asyncio.run(main())


def test_mutual_tls_and_refusal_on_uvloop(pki: dict[str, TLSContexts]) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with (
            Node(1, ssl=pki["node1"]) as n1,
            Node(2, ssl=pki["node2"]) as n2,
            Node(3, ssl=pki["rogue"]) as bad,
        ):
            n2.t.set_peer_address(1, "127.0.0.1", n1.t.port)
            bad.t.set_peer_address(1, "127.0.0.1", n1.t.port)
            n2.t.send(1, [hb(2, 1)])
            bad.t.send(1, [hb(3, 1)])
            await wait_until(lambda: bool(n1.received))
            await wait_until(lambda: n1.t.stats["handshake_failures"] >= 1)
            await settle()
            assert {m.frm for m in n1.received} == {2}

    uvloop.run(main())
