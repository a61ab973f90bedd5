"""The tip rules scored on values: the moment a tip means and the places it names (nlu/data/values.yml)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from nlu.places import Towns
from nlu.values import ValueCase, default_towns, format_values, load_values, score_values

AMS = ZoneInfo("Europe/Amsterdam")
# Measured on the 83 tips of the value file: time 0.976, place precision 1.000, recall 0.990. The rules
# before the value work scored 0.867 on time and 0.676 on place recall (they kept the first place only).
FLOOR_TIME = 0.97
FLOOR_PLACE_PRECISION = 0.98
FLOOR_PLACE_RECALL = 0.98


def test_value_file_holds_enough_real_looking_tips() -> None:
    cases = load_values()
    assert len(cases) >= 60
    assert all(c.received.tzinfo is not None for c in cases)
    assert sum(c.seen is None for c in cases) >= 5  # tips whose time cannot be resolved are scored too
    assert len({c.text for c in cases}) >= len(cases) - 3


def test_value_scores_stay_at_or_above_the_measured_floor() -> None:
    report = score_values(load_values(), default_towns())
    assert report.time_accuracy >= FLOOR_TIME, format_values(report)
    assert report.place_precision >= FLOOR_PLACE_PRECISION, format_values(report)
    assert report.place_recall >= FLOOR_PLACE_RECALL, format_values(report)


def test_score_counts_a_time_within_a_minute_and_a_rightly_missing_one() -> None:
    received = datetime(2026, 11, 20, 14, 55, tzinfo=AMS)
    cases = (
        ValueCase("nu net 5 minuten geleden", received, datetime(2026, 11, 20, 14, 50, 40, tzinfo=AMS), ()),
        ValueCase("gisteren", received, None, ()),
        ValueCase("om 9 uur", received, datetime(2026, 11, 20, 21, 0, tzinfo=AMS), ()),  # wrong on purpose
    )
    report = score_values(cases, None)
    assert report.time_accuracy == pytest.approx(2 / 3)
    assert report.times_expected == 2
    assert report.times_right == 1
    assert any("om 9 uur" in miss for miss in report.misses)


def test_score_counts_places_without_case_or_article() -> None:
    received = datetime(2026, 11, 20, 14, 55, tzinfo=AMS)
    towns = Towns(["Enschede"])
    cases = (
        ValueCase(
            "bij het station Enschede, bij de Jumbo", received, None, ("het Station", "enschede", "Hema")
        ),
    )
    report = score_values(cases, towns)
    assert report.place_precision == pytest.approx(2 / 3)  # Jumbo was not expected
    assert report.place_recall == pytest.approx(2 / 3)  # Hema was not found


def test_cli_prints_value_scores_next_to_span_scores(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from nlu.evaluate import main

    values = tmp_path / "values.yml"
    values.write_text(
        "tz: Europe/Amsterdam\ntips:\n- text: om kwart over 3\n  received: 2026-11-20 00:55\n"
        "  seen: 2026-11-19 15:15\n  places: []\n",
        encoding="utf-8",
    )
    assert main(["--values", str(values)]) == 0
    out = capsys.readouterr().out
    assert "entity F1" in out
    assert "time right (±1 min)" in out
    assert "place recall" in out
    assert "1.000" in out.split("time right (±1 min)")[1].splitlines()[0]
