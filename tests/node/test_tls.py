"""Mutual TLS between nodes (certificates made with the openssl command line)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from nodeharness import Cluster

from pgraft.control.errors import ControlError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    key, crt = d / f"{name}-ca.key", d / f"{name}-ca.crt"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(crt), "-days", "2", "-subj", f"/CN={name} test CA")  # fmt: skip
    return key, crt


def make_cert(d: Path, name: str, ca: tuple[Path, Path]) -> dict[str, str]:
    key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", f"/CN={name}")  # fmt: skip
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]),
             "-CAcreateserial", "-out", str(crt), "-days", "2")  # fmt: skip
    return {"tls_cert": str(crt), "tls_key": str(key), "tls_ca": str(ca[1])}


def test_tls_cluster_replicates_and_refuses_a_foreign_certificate(cluster: Cluster) -> None:
    d = cluster.root / "pki"
    d.mkdir()
    ca = make_ca(d, "cluster")
    nodes = [cluster.add(i, **make_cert(d, f"n{i}", ca)) for i in (1, 2)]
    assert nodes[0].call("init") is True
    assert nodes[0].call("add_node", node_id=2, address="127.0.0.1", port=nodes[1].port)
    index = nodes[1].call("log_append", term=0, data="over tls")
    nodes[0].call("log_apply", index=index)
    rows = nodes[0].call("log_read", from_index=index, to_index=index, limit=1)
    assert rows[0]["data"] == "over tls"
    stranger = cluster.add(3, **make_cert(d, "n3", make_ca(d, "other")))
    with pytest.raises(ControlError) as exc:
        nodes[0].call("add_node", node_id=3, address="127.0.0.1", port=stranger.port)
    assert exc.value.code == "55000"
    assert nodes[0].call("cluster_status")["num_nodes"] == 2
