"""Command encoding: round trips and strict rejection of malformed data."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgraft.statemachine import commands as c
from pgraft.statemachine.commands import CommandError

RID = bytes(range(16))


@pytest.mark.parametrize(
    "cmd",
    [
        c.LogAppend(RID, b"\x00payload\xff"),
        c.LogAppend(RID, b""),
        c.LogAppend(RID, b"fenced", 7),
        c.Put(RID, "k", "v"),
        c.Delete(RID, "k"),
        c.CompareAndSet(RID, "k", None, "v"),
        c.CompareAndSet(RID, "k", "old", "new"),
    ],
)
def test_round_trip(cmd: c.Command) -> None:
    assert c.decode(c.encode(cmd)) == cmd


def test_unfenced_log_command_is_the_three_field_form() -> None:
    assert c.encode(c.LogAppend(RID, b"d")) == _pack(["log", RID, b"d"])
    assert c.decode(_pack(["log", RID, b"d", 0])) == c.LogAppend(RID, b"d")


def test_empty_data_is_the_noop() -> None:
    assert c.decode(b"") is None


def test_request_ids_are_random_16_bytes() -> None:
    a, b = c.new_request_id(), c.new_request_id()
    assert len(a) == 16 and a != b
    with pytest.raises(CommandError):
        c.encode(c.Put(b"short", "k", "v"))


def _pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xc1", "undecodable"),
        (_pack(["put", RID, "k", "v"])[:-1], "undecodable"),
        (_pack(["put", RID, "k", "v"]) + b"\x00", "undecodable"),
        (_pack({"kind": "put"}), "not a non-empty msgpack array"),
        (_pack([]), "not a non-empty msgpack array"),
        (_pack(["drop", RID]), "unknown command kind"),
        (_pack(["put", RID, "k"]), "takes 4 fields"),
        (_pack(["log", RID]), "takes 3 or 4 fields"),
        (_pack(["log", RID, b"d", -1]), "term must be a non-negative"),
        (_pack(["log", RID, b"d", True]), "term must be a non-negative"),
        (_pack(["log", RID, b"d", "1"]), "term must be int"),
        (_pack(["put", b"short", "k", "v"]), "request_id"),
        (_pack(["put", "not-bytes-16-chr", "k", "v"]), "request_id"),
        (_pack(["log", RID, "text, not bytes"]), "data must be bytes"),
        (_pack(["put", RID, b"k", "v"]), "key must be str"),
        (_pack(["cas", RID, "k", 5, "v"]), "expected must be str"),
        (_pack(["put", RID, "k", b"\xff\xfe"]), "value must be str"),
        (b"\x94" + _pack("put") + _pack(RID) + _pack("k") + b"\xa2\xff\xfe", "undecodable"),
    ],
)
def test_malformed_data_raises_command_error(data: bytes, match: str) -> None:
    with pytest.raises(CommandError, match=match):
        c.decode(data)


def test_request_id_of_recovers_the_id_of_a_malformed_command() -> None:
    assert c.request_id_of(_pack(["put", RID, "k"])) == RID
    assert c.request_id_of(b"\xc1") == b""
    assert c.request_id_of(_pack(["put", b"short"])) == b""


@given(st.binary(max_size=64) | st.builds(_pack, st.lists(st.none() | st.text() | st.binary())))
def test_decode_only_ever_raises_command_error(data: bytes) -> None:
    with contextlib.suppress(CommandError):
        c.decode(data)
