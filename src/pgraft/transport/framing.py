"""Length-prefixed frames: a 4-byte big-endian payload length, then the payload.

Theory of operation
-------------------
TCP delivers a byte stream with arbitrary split points; framing restores message
boundaries. ``FrameDecoder`` is sans-I/O (the h11 model): ``feed(data)`` appends
whatever bytes arrived and returns every frame that is now complete, keeping a partial
tail for the next call. It rejects a frame whose announced length exceeds
``max_frame_size`` as soon as the 4-byte header is seen -- before buffering any of it --
so a hostile or broken peer cannot make this node allocate more than one maximal frame.
After an error the decoder is poisoned: the connection must be dropped, because the
stream position can no longer be trusted.
"""

from __future__ import annotations

import struct

from pgraft.transport.errors import LocalProtocolError, RemoteProtocolError

DEFAULT_MAX_FRAME_SIZE = 64 << 20
"""Large enough for an InstallSnapshot of a modest state machine image."""

_HEADER = struct.Struct(">I")
HEADER_SIZE = _HEADER.size


def encode_frame(payload: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Prefix ``payload`` with its length. Raises ``LocalProtocolError`` if it is larger
    than ``max_frame_size`` (the peer would drop the connection)."""
    if len(payload) > max_frame_size:
        raise LocalProtocolError(
            f"frame of {len(payload)} bytes exceeds the maximum of {max_frame_size}"
        )
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed bytes, get complete frame payloads."""

    __slots__ = ("_broken", "_buffer", "_need", "max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not 0 < max_frame_size <= 0xFFFFFFFF:
            raise LocalProtocolError("max_frame_size must be in 1..2**32-1")
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()
        self._need = -1  # payload length of the frame being received; -1: header pending
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buffer) + (HEADER_SIZE if self._need >= 0 else 0)

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payloads completed by it, in order.

        Raises ``RemoteProtocolError`` on an oversized frame, and on every call after
        that."""
        if self._broken:
            raise RemoteProtocolError("frame decoder already failed")
        buf = self._buffer
        buf += data
        spans: list[tuple[int, int]] = []
        pos = 0
        end = len(buf)
        while True:
            if self._need < 0:
                if end - pos < HEADER_SIZE:
                    break
                (size,) = _HEADER.unpack_from(buf, pos)
                if size > self.max_frame_size:
                    self._broken = True
                    self._buffer = bytearray()
                    raise RemoteProtocolError(
                        f"frame of {size} bytes exceeds the maximum of {self.max_frame_size}"
                    )
                pos += HEADER_SIZE
                self._need = size
            if end - pos < self._need:
                break
            spans.append((pos, pos + self._need))
            pos += self._need
            self._need = -1
        if not pos:
            return []
        with memoryview(buf) as view:
            frames = [bytes(view[lo:hi]) for lo, hi in spans]
        del buf[:pos]
        return frames
