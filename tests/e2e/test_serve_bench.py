"""The serve benchmark starts the real server, loads it and reports every figure (a small run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.serve_bench import run


@pytest.mark.slow
def test_serve_bench_runs_small(tmp_path: Path) -> None:
    figures = run(300, tmp_path / "serve.db", messages=80, clients=4)
    assert figures["load_messages"] == 80
    assert 0 < figures["baseline_start_s"] < figures["start_s"]
    assert figures["idle_rss_mb"] > figures["baseline_rss_mb"] > 0
    assert figures["load_p50_ms"] <= figures["load_p99_ms"]
