"""Handshake (sans-I/O): both sides driven by hand, every payload captured."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgraft.transport.errors import HandshakeError, LocalProtocolError
from pgraft.transport.handshake import (
    MAGIC,
    PROTOCOL_VERSION,
    Handshake,
    Identity,
    PeerHello,
    reject_payload,
)

SECRET = b"correct horse battery staple"


def ident(node_id: int, name: str = "c1", cluster_id: int = 42) -> Identity:
    return Identity(name, cluster_id, node_id, "127.0.0.1", 7000 + node_id)


def pair(
    dialer_secret: bytes | None = None,
    listener_secret: bytes | None = None,
    dialer: Identity | None = None,
    listener: Identity | None = None,
    **kw: object,
) -> tuple[Handshake, Handshake]:
    d = Handshake(
        dialer or ident(1),
        dialer=True,
        secret=dialer_secret,
        expected_peer=2,
        **kw,  # type: ignore[arg-type]
    )
    lst = Handshake(listener or ident(2), dialer=False, secret=listener_secret)
    return d, lst


def run(d: Handshake, lst: Handshake) -> tuple[list[bytes], HandshakeError | None, str]:
    """Shuttle payloads; returns (wire, error, side that raised). A failing side sends
    its REJECT like the connection does, and the other side must fail on it."""
    wire: list[bytes] = []
    to_listener = d.start()
    to_dialer = lst.start()
    for _ in range(10):
        if not to_listener and not to_dialer:
            break
        wire += to_listener
        for payload in to_listener:
            try:
                to_dialer += lst.receive(payload)
            except HandshakeError as exc:
                wire.append(reject_payload(exc.reason))
                with pytest.raises(HandshakeError, match="refused by peer"):
                    d.receive(wire[-1])
                return wire, exc, "listener"
        to_listener = []
        wire += to_dialer
        for payload in to_dialer:
            try:
                to_listener += d.receive(payload)
            except HandshakeError as exc:
                wire.append(reject_payload(exc.reason))
                with pytest.raises(HandshakeError, match="refused by peer"):
                    lst.receive(wire[-1])
                return wire, exc, "dialer"
        to_dialer = []
    return wire, None, ""


@pytest.mark.parametrize("secret", [None, SECRET])
def test_success(secret: bytes | None) -> None:
    d, lst = pair(secret, secret)
    wire, err, _ = run(d, lst)
    assert err is None and d.done and lst.done
    assert d.peer == PeerHello(2, "c1", 42, "127.0.0.1", 7002, inbound=False)
    assert lst.peer == PeerHello(1, "c1", 42, "127.0.0.1", 7001, inbound=True)
    assert len(wire) == 5  # hello, hello, auth, auth, accept


def test_secret_never_on_the_wire() -> None:
    wire, err, _ = run(*pair(SECRET, SECRET))
    assert err is None
    blob = b"".join(wire)
    assert SECRET not in blob
    assert SECRET[:8] not in blob


def test_wrong_cluster_name_refused() -> None:
    _, err, side = run(*pair(listener=ident(2, name="other")))
    assert err is not None and side == "listener"
    assert "'c1'" in err.reason and "'other'" in err.reason


@pytest.mark.parametrize(
    ("d_secret", "l_secret"), [(SECRET, b"n0t-the-s3cret"), (b"n0t-the-s3cret", SECRET)]
)
def test_wrong_secret_refused_both_directions(d_secret: bytes, l_secret: bytes) -> None:
    # The listener proves itself first, so a wrong secret is caught by the dialer.
    wire, err, side = run(*pair(d_secret, l_secret))
    assert err is not None and side == "dialer"
    assert "authentication failed" in err.reason
    assert not any(s in b"".join(wire) for s in (SECRET, b"n0t-the-s3cret"))


def test_wrong_dialer_mac_refused_by_listener() -> None:
    d, lst = pair(SECRET, SECRET)
    [hello_d] = d.start()
    lst.start()
    hello_l, auth_l = lst.receive(hello_d)
    d.receive(hello_l)
    [auth_d] = d.receive(auth_l)
    forged = msgpack.packb(["auth", bytes(32)], use_bin_type=True)
    with pytest.raises(HandshakeError, match="authentication failed"):
        lst.receive(forged)
    assert auth_d != forged


def test_mac_is_bound_to_the_nonces() -> None:
    """A MAC recorded from one session is useless in another (fresh nonces)."""
    d1, l1 = pair(SECRET, SECRET)
    wire1, err, _ = run(d1, l1)
    assert err is None
    d2, l2 = pair(SECRET, SECRET)
    [hello_d] = d2.start()
    l2.start()
    l2.receive(hello_d)
    with pytest.raises(HandshakeError, match="authentication failed"):
        l2.receive(wire1[3])  # the first session's dialer AUTH


def test_secret_on_one_side_only_refused() -> None:
    _, err, side = run(*pair(None, SECRET))
    assert err is not None and side == "listener"
    assert "one side only" in err.reason


def test_other_protocol_version_refused_clearly() -> None:
    lst = Handshake(ident(2), dialer=False)
    lst.start()
    hello = msgpack.packb([MAGIC, PROTOCOL_VERSION + 1, "fields", "may", "differ"])
    with pytest.raises(HandshakeError, match=f"version {PROTOCOL_VERSION + 1} is not supported"):
        lst.receive(hello)


def test_dialed_node_must_be_the_expected_one() -> None:
    _, err, side = run(*pair(listener=ident(3)))
    assert err is not None and side == "dialer"
    assert "dialed node 2 but node 3 answered" in err.reason


def test_peer_with_own_node_id_refused() -> None:
    d = Handshake(ident(2), dialer=True, expected_peer=2)
    lst = Handshake(ident(2), dialer=False)
    _, err, side = run(d, lst)
    assert err is not None and side == "listener" and "own id" in err.reason


def test_cluster_id_mismatch_refused_by_default() -> None:
    _, err, _ = run(*pair(listener=ident(2, cluster_id=43)))
    assert err is not None and "cluster id" in err.reason


def test_accept_hook_sees_peer_and_decides() -> None:
    seen: list[PeerHello] = []

    def adopt(hello: PeerHello) -> bool:
        seen.append(hello)
        return True

    d = Handshake(ident(1, cluster_id=99), dialer=True, expected_peer=2, accept=adopt)
    lst = Handshake(ident(2, cluster_id=0), dialer=False, accept=adopt)
    _, err, _ = run(d, lst)
    assert err is None
    assert {(h.node_id, h.cluster_id, h.inbound) for h in seen} == {(2, 0, False), (1, 99, True)}

    d = Handshake(ident(1), dialer=True, expected_peer=2)
    lst = Handshake(ident(2), dialer=False, accept=lambda hello: False)
    _, err, side = run(d, lst)
    assert err is not None and side == "listener"


def test_misuse_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Handshake(ident(1), dialer=True)  # no expected peer
    with pytest.raises(LocalProtocolError):
        Handshake(ident(1), dialer=False, secret=b"")
    d, lst = pair()
    run(d, lst)
    with pytest.raises(LocalProtocolError):
        d.receive(b"\x90")


@given(st.binary(max_size=120))
@settings(max_examples=1000, deadline=None)
def test_fuzz_listener_raises_only_handshake_errors(payload: bytes) -> None:
    lst = Handshake(ident(2), dialer=False, secret=SECRET)
    lst.start()
    try:
        lst.receive(payload)
    except HandshakeError:
        return
    raise AssertionError("random bytes passed as a HELLO")


def _fixed_pair() -> tuple[Handshake, Handshake]:
    d = Handshake(ident(1), dialer=True, secret=SECRET, expected_peer=2, nonce=b"d" * 32)
    return d, Handshake(ident(2), dialer=False, secret=SECRET, nonce=b"l" * 32)


_RECEIVER = ("listener", "dialer", "dialer", "listener", "dialer")  # of wire[i]


@given(st.integers(0, 4), st.integers(0, 200), st.integers(0, 255))
@settings(max_examples=1000, deadline=None)
def test_fuzz_mutated_handshake(index: int, pos: int, byte: int) -> None:
    """Replaying a session with one byte of one payload changed either fails with a
    HandshakeError or, if the change was a no-op, still completes."""
    wire, err, _ = run(*_fixed_pair())
    assert err is None and len(wire) == 5
    payload = bytearray(wire[index])
    payload[pos % len(payload)] = byte
    d, lst = _fixed_pair()
    d.start()
    lst.start()
    try:
        for i, original in enumerate(wire):
            side = d if _RECEIVER[i] == "dialer" else lst
            side.receive(bytes(payload) if i == index else original)
    except HandshakeError:
        assert bytes(payload) != wire[index]
        return
    assert d.done and lst.done
