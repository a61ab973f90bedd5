"""The fan-out benchmark runs end to end on a small seed and reports every figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fanout_bench import exactly_once, run


@pytest.mark.slow
def test_fanout_bench_runs_small(tmp_path: Path) -> None:
    figures = run(3_000, tmp_path / "bench.db", messages=100, rate_seconds=0.5, database_url=None)
    assert figures["recipients_5km"] > 0
    assert 0 < figures["recipients_polygon"] < figures["recipients_5km"] * 1.2
    assert figures["polygon_select_ms_median"] > 0
    assert figures["outbox_rows"] == figures["recipients_5km"]
    assert figures["dispatch_messages"] == 100
    assert figures["dispatch_ratio"] > 0
    assert set(figures["rate_limited"]) == {"telegram", "sms", "whatsapp", "voice"}
    assert all(rate["ratio"] > 0.5 for rate in figures["rate_limited"].values())
    assert figures["rss_peak_mb"] > 0


def test_exactly_once_counts_duplicates_missing_and_others() -> None:
    found = exactly_once(["a", "b", "c", "d"], {"a": 1, "b": 3, "d": 1, "x": 2})
    assert found == {"deliveries": 4, "duplicates": 2, "missing": 1, "other": 2}


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="needs PostgreSQL"):
        run(100, tmp_path / "bench.db", messages=10, rate_seconds=0.1, database_url=None, workers=2)
    assert not (tmp_path / "bench.db").exists()


@pytest.mark.postgres
@pytest.mark.slow
def test_fanout_bench_two_workers_on_postgresql(postgres_url: str) -> None:
    figures = run(600, None, messages=200, rate_seconds=0.5, database_url=postgres_url, repeat=1, workers=2)
    once = figures["exactly_once"]
    assert once["ok"], once
    assert (once["duplicates"], once["missing"], once["unsent"]) == (0, 0, 0)
    # A warm-up drain per worker and one timed drain for each worker count.
    assert once["rounds"] == 4
    assert set(figures["by_workers"]) == {"1", "2"}
    two = figures["by_workers"]["2"]
    assert sum(two["sent_by_worker"][0]) == two["messages"] == figures["dispatch_messages"]
    assert all(row["dispatch_per_s"] > 0 and row["ratio"] > 0 for row in figures["by_workers"].values())
    assert figures["scaling"] > 0
