"""The login-flood benchmark serves the real app twice, floods it three ways and reports every figure."""

from __future__ import annotations

import pytest

from bench.login_flood_bench import run


@pytest.mark.slow
def test_login_flood_bench_runs_small() -> None:
    figures = run(rate=5.0, seconds=2.0)
    phases = ("quiet", "flood_spread", "flood_one_address", "flood_spread_in_loop")
    for phase in phases:
        assert figures[phase]["probes"] == 10, phase
        assert figures[phase]["webhook_p50_ms"] <= figures[phase]["webhook_p99_ms"]
    assert figures["quiet"]["login_answers"] == {}
    assert set(figures["flood_spread"]["login_answers"]) == {"401"}, "spread: every post checked"
    assert figures["flood_one_address"]["login_answers"]["429"] > 0, "one address: throttled"
    assert figures["flood_one_address"]["login_answers"].get("401", 0) <= 6, "at most the free failures"
    assert set(figures["flood_spread_in_loop"]["login_answers"]) == {"401"}
