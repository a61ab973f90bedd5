"""The fan-out benchmark runs end to end on a small seed and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fanout_bench import run


@pytest.mark.slow
def test_fanout_bench_runs_small(tmp_path: Path) -> None:
    figures = run(3_000, tmp_path / "bench.db", messages=100, rate_seconds=0.5, database_url=None)
    assert figures["recipients_5km"] > 0
    assert figures["outbox_rows"] == figures["recipients_5km"]
    assert figures["dispatch_messages"] == 100
    assert figures["dispatch_ratio"] > 0
    assert set(figures["rate_limited"]) == {"telegram", "sms", "whatsapp", "voice"}
    assert all(rate["ratio"] > 0.5 for rate in figures["rate_limited"].values())
    assert figures["rss_peak_mb"] > 0
