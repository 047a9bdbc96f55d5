"""Micro benchmark: one-way message throughput between two transports on loopback.

Node 1 sends AppendEntries messages (each carrying ``--entries`` entries of
``--entry-bytes`` bytes) to node 2 in ``send`` calls of ``--batch`` messages, keeping at
most ``--window`` messages in flight (the benchmark's own flow control, since the
transport drops instead of blocking). It stops after ``--messages`` messages or
``--seconds`` seconds, whichever comes first, and prints one JSON object::

    python -m pgraft.transport.bench [--uvloop] [--tls] [--secret] [--messages N] ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

from pgraft.core.types import AppendEntries, Entry, Message
from pgraft.transport.tls import TLSContexts
from pgraft.transport.transport import Transport


async def _run(args: argparse.Namespace) -> dict[str, object]:
    received = 0
    woke = asyncio.Event()

    def on_messages(messages: list[Message]) -> None:
        nonlocal received
        received += len(messages)
        woke.set()

    tls = _throwaway_tls(args.tls_dir) if args.tls_dir else None
    secret = b"bench-secret" if args.secret else None
    sender = Transport(
        1, "bench", lambda: 1, "127.0.0.1", 0, on_messages=on_messages, ssl=tls, secret=secret
    )
    receiver = Transport(
        2, "bench", lambda: 1, "127.0.0.1", 0, on_messages=on_messages, ssl=tls, secret=secret
    )
    await sender.start()
    await receiver.start()
    sender.set_peer_address(2, "127.0.0.1", receiver.port)
    data = b"x" * args.entry_bytes
    batch: list[Message] = [
        AppendEntries(
            1,
            1,
            2,
            1,
            i * args.entries,
            1,
            tuple(Entry(1, i * args.entries + k + 1, data=data) for k in range(args.entries)),
            0,
        )
        for i in range(args.batch)
    ]
    warmup_deadline = time.monotonic() + 10
    sender.send(2, batch[:1])
    while received < 1 and time.monotonic() < warmup_deadline:  # connection established
        woke.clear()
        await asyncio.wait_for(woke.wait(), 10)
    received = sent = 0
    start = time.perf_counter()
    deadline = start + args.seconds
    while sent < args.messages and time.perf_counter() < deadline:
        if sent - received + len(batch) <= args.window:
            sender.send(2, batch)
            sent += len(batch)
            await asyncio.sleep(0)
        else:
            woke.clear()
            await asyncio.wait_for(woke.wait(), 10)
    while received < sent and time.perf_counter() < deadline + 10:
        woke.clear()
        await asyncio.wait_for(woke.wait(), 10)
    elapsed = time.perf_counter() - start
    stats = sender.stats
    await sender.close()
    await receiver.close()
    return {
        "benchmark": "transport_one_way",
        "loop": "uvloop" if args.uvloop else "asyncio",
        "tls": tls is not None,
        "messages": received,
        "entries_per_message": args.entries,
        "entry_bytes": args.entry_bytes,
        "batch": args.batch,
        "seconds": round(elapsed, 3),
        "messages_per_s": round(received / elapsed),
        "entries_per_s": round(received * args.entries / elapsed),
        "mb_per_s": round(stats["bytes_out"] / elapsed / 1e6, 2),
        "frames_out": stats["frames_out"],
        "dropped": stats["dropped"],
    }


def _throwaway_tls(directory: str) -> TLSContexts:
    """A self-signed certificate (made with the openssl CLI) that is its own CA."""
    key, cert = os.path.join(directory, "bench.key"), os.path.join(directory, "bench.crt")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=bench"],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return TLSContexts.from_files(cert, key, cert)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=64, help="messages per send() call")
    parser.add_argument("--entries", type=int, default=1, help="entries per AppendEntries")
    parser.add_argument("--entry-bytes", type=int, default=64)
    parser.add_argument("--window", type=int, default=2048, help="max messages in flight")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    parser.add_argument("--tls", action="store_true", help="mutual TLS (needs openssl)")
    parser.add_argument("--secret", action="store_true", help="shared-secret handshake")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tls_dir:
        args.tls_dir = tls_dir if args.tls else None
        _main(args)


def _main(args: argparse.Namespace) -> None:
    if args.uvloop:
        import uvloop

        result = uvloop.run(_run(args))
    else:
        result = asyncio.run(_run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
