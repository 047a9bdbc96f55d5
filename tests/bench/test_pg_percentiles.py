"""The pg benchmark's latency percentiles, read from pgbench's per-transaction logs."""

from __future__ import annotations

from pathlib import Path

from pgraft.bench.pg import _latency_percentiles


def test_percentiles_merge_every_thread_log(tmp_path: Path) -> None:
    # pgbench -l: "client_id transaction_no latency_us script_no epoch epoch_us", one
    # file per thread (tx.<pid> and tx.<pid>.<thread>).
    (tmp_path / "tx.100").write_text("".join(f"0 {i} {1000 * i} 0 1 2\n" for i in range(1, 51)))
    (tmp_path / "tx.100.1").write_text("".join(f"1 {i} {1000 * i} 0 1 2\n" for i in range(51, 101)))
    (tmp_path / "other.log").write_text("0 1 999999999 0 1 2\n")  # not pgbench's: ignored
    assert _latency_percentiles(tmp_path) == {"latency_p50_ms": 51.0, "latency_p99_ms": 100.0}


def test_percentiles_of_an_empty_run_are_none(tmp_path: Path) -> None:
    (tmp_path / "tx.1").write_text("")
    assert _latency_percentiles(tmp_path) == {"latency_p50_ms": None, "latency_p99_ms": None}
