"""Framing: any split of the byte stream yields the same frames; oversized frames are
refused before they are buffered."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgraft.transport.errors import LocalProtocolError, RemoteProtocolError
from pgraft.transport.framing import FrameDecoder, encode_frame

payload_lists = st.lists(st.binary(max_size=300), max_size=8)


@given(payload_lists, st.lists(st.integers(0, 5000), max_size=10))
@settings(max_examples=500, deadline=None)
def test_any_split_points_yield_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out: list[bytes] = []
    for lo, hi in itertools.pairwise(points):
        out += decoder.feed(stream[lo:hi])
    assert out == payloads
    assert decoder.buffered == 0


def test_byte_by_byte() -> None:
    stream = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"world")
    decoder = FrameDecoder()
    out = [frame for i in range(len(stream)) for frame in decoder.feed(stream[i : i + 1])]
    assert out == [b"hello", b"", b"world"]


def test_partial_frame_is_kept() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"abcdef")[:7]) == []
    assert decoder.buffered == 7
    assert decoder.feed(b"def" + encode_frame(b"x")) == [b"abcdef", b"x"]


def test_oversized_frame_is_refused_from_its_header() -> None:
    decoder = FrameDecoder(max_frame_size=100)
    assert decoder.feed(encode_frame(b"a" * 100)) == [b"a" * 100]
    with pytest.raises(RemoteProtocolError, match="exceeds the maximum"):
        decoder.feed(struct.pack(">I", 101))  # no payload needed to refuse it
    with pytest.raises(RemoteProtocolError):
        decoder.feed(encode_frame(b"ok"))  # poisoned: the stream cannot be trusted
    assert decoder.buffered == 0


def test_huge_announced_length_is_refused_with_default_limit() -> None:
    with pytest.raises(RemoteProtocolError):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


def test_encoder_refuses_what_the_peer_would_refuse() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(b"a" * 11, max_frame_size=10)


@pytest.mark.parametrize("size", [0, -1, 1 << 32])
def test_invalid_limit(size: int) -> None:
    with pytest.raises(LocalProtocolError):
        FrameDecoder(size)


@given(st.binary(max_size=400))
@settings(max_examples=1000, deadline=None)
def test_fuzz_decoder_raises_only_remote_errors(data: bytes) -> None:
    decoder = FrameDecoder(max_frame_size=256)
    try:
        frames = decoder.feed(data)
    except RemoteProtocolError:
        return
    assert sum(len(f) + 4 for f in frames) + decoder.buffered == len(data)
