"""Scoring: intent accuracy and F1, entity precision and recall by overlapping spans, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.evaluate import evaluate, format_reports, main, score
from nlu.training import TrainingExample, parse_example
from nlu.types import Entity, Intent, ParseResult

TEST_YML = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hallo
    - hoi
- intent: give_tip
  examples: |
    - man in [rode jas](description) bij de [Jumbo](place)
"""


def _result(text: str, intent: str, *entities: tuple[str, int, int]) -> ParseResult:
    return ParseResult(
        text=text,
        intent=Intent(intent, 0.9),
        entities=tuple(Entity(name, text[s:e], s, e) for name, s, e in entities),
    )


class _TableParser:
    """Answers from a table: a fake parser with known mistakes."""

    def __init__(self, answers: dict[str, ParseResult]) -> None:
        self._answers = answers

    async def parse(self, text: str) -> ParseResult:
        return self._answers[text]


def test_score_counts_intents_and_entities() -> None:
    tip = parse_example("man in [rode jas](description) bij de [Jumbo](place)", "give_tip")
    examples = (TrainingExample("hallo", "greet"), TrainingExample("hoi", "greet"), tip)
    results = [
        _result("hallo", "greet"),
        _result("hoi", "give_tip"),
        # description overlaps (counts), place missed, a spurious time_seen
        _result(tip.text, "give_tip", ("description", 7, 11), ("time_seen", 0, 3)),
    ]
    report = score(examples, results)
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.intents["greet"].recall == pytest.approx(0.5)
    assert report.intents["greet"].precision == pytest.approx(1.0)
    assert report.intents["give_tip"].precision == pytest.approx(0.5)
    assert report.entity_precision == pytest.approx(0.5)
    assert report.entity_recall == pytest.approx(0.5)
    assert [m.text for m in report.misses] == ["hoi"]


def test_entity_of_another_name_on_the_same_span_does_not_count() -> None:
    tip = parse_example("bij de [Jumbo](place)", "give_tip")
    report = score((tip,), [_result(tip.text, "give_tip", ("direction", 7, 12))])
    assert report.entity_precision == 0.0
    assert report.entity_recall == 0.0


def test_evaluate_any_parser(tmp_path: Path) -> None:
    path = tmp_path / "test.yml"
    path.write_text(TEST_YML)
    tip = "man in rode jas bij de Jumbo"
    parser = _TableParser(
        {
            "hallo": _result("hallo", "greet"),
            "hoi": _result("hoi", "greet"),
            tip: _result(tip, "give_tip", ("description", 7, 15), ("place", 23, 28)),
        }
    )
    report = evaluate(parser, path)
    assert report.examples == 3
    assert report.accuracy == 1.0
    assert report.macro_f1 == 1.0
    assert (report.entity_precision, report.entity_recall) == (1.0, 1.0)
    table = format_reports({"fake": report, "other": report})
    assert "intent accuracy" in table and "fake" in table and "other" in table


def test_cli_prints_builtin_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "test.yml"
    path.write_text(TEST_YML)
    assert main(["--test", str(path)]) == 0
    out = capsys.readouterr().out
    assert "builtin" in out
    assert "entity recall" in out
