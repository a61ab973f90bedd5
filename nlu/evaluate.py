"""Scoring a parser on the held-out `nlu/data/test.yml`: intent accuracy, macro F1, entity precision/recall.

`python -m nlu.evaluate [--rasa-url URL] [--test PATH]` (`make nlu-eval`) prints the built-in parser's
figures, and Rasa's next to them when a Rasa server is given. Any `Parser` can be scored with `evaluate`.
Below them come the built-in rules' value scores on `nlu/data/values.yml` (nlu/values.py): the moment a
tip means, right to the minute, and the places it names.
An entity counts as found when the parser gives the same entity name on an overlapping span: the
built-in rules and Rasa's DIET draw span edges differently ("bij [de Jumbo]" or "bij de [Jumbo]").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from nlu.entities import ENTITY_NAMES
from nlu.training import TEST_FILE, TrainingExample, load_training_data
from nlu.types import Entity, Parser, ParseResult
from nlu.values import VALUES_FILE, default_towns, format_values, load_values, score_values


@dataclass(frozen=True)
class Score:
    """Precision, recall and F1 of one label, with its number of expected cases."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Miss:
    """A test sentence the parser got wrong."""

    text: str
    expected: str
    got: str


@dataclass(frozen=True)
class EvalReport:
    """A parser's figures on one test file."""

    examples: int
    accuracy: float
    macro_f1: float
    intents: dict[str, Score]
    entity_precision: float
    entity_recall: float
    entity_f1: float
    entities: dict[str, Score]
    misses: tuple[Miss, ...] = field(default=())


def _score(tp: int, fp: int, fn: int) -> Score:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Score(precision, recall, f1, tp + fn)


def _entity_hits(example: TrainingExample, found: tuple[Entity, ...]) -> tuple[Counter[str], ...]:
    """(true positives, false positives, false negatives) per entity name for one sentence."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    unmatched = list(example.entities)
    for entity in found:
        if entity.entity not in ENTITY_NAMES:
            continue
        overlapping = (g for g in unmatched if g.start < entity.end and entity.start < g.end)
        match = next((g for g in overlapping if g.entity == entity.entity), None)
        if match is None:
            fp[entity.entity] += 1
        else:
            tp[entity.entity] += 1
            unmatched.remove(match)
    for gold in unmatched:
        fn[gold.entity] += 1
    return tp, fp, fn


def score(examples: tuple[TrainingExample, ...], results: list[ParseResult]) -> EvalReport:
    """Figures for parser results against the expected intents and entities, in the same order."""
    intent_tp: Counter[str] = Counter()
    intent_fp: Counter[str] = Counter()
    intent_fn: Counter[str] = Counter()
    ent_tp: Counter[str] = Counter()
    ent_fp: Counter[str] = Counter()
    ent_fn: Counter[str] = Counter()
    misses = []
    for example, result in zip(examples, results, strict=True):
        got = result.intent.name
        if got == example.intent:
            intent_tp[got] += 1
        else:
            intent_fp[got] += 1
            intent_fn[example.intent] += 1
            misses.append(Miss(example.text, example.intent, got))
        tp, fp, fn = _entity_hits(example, result.entities)
        ent_tp.update(tp)
        ent_fp.update(fp)
        ent_fn.update(fn)
    labels = sorted({e.intent for e in examples})
    intents = {label: _score(intent_tp[label], intent_fp[label], intent_fn[label]) for label in labels}
    names = sorted(set(ent_tp) | set(ent_fp) | set(ent_fn))
    entities = {name: _score(ent_tp[name], ent_fp[name], ent_fn[name]) for name in names}
    overall = _score(sum(ent_tp.values()), sum(ent_fp.values()), sum(ent_fn.values()))
    n = len(examples)
    return EvalReport(
        examples=n,
        accuracy=sum(intent_tp.values()) / n if n else 0.0,
        macro_f1=sum(s.f1 for s in intents.values()) / len(intents) if intents else 0.0,
        intents=intents,
        entity_precision=overall.precision,
        entity_recall=overall.recall,
        entity_f1=overall.f1,
        entities=entities,
        misses=tuple(misses),
    )


async def evaluate_async(parser: Parser, test_path: Path = TEST_FILE) -> EvalReport:
    """Score `parser` on a Rasa-format test file (inside a running event loop)."""
    examples = load_training_data(test_path).examples
    results = [await parser.parse(e.text) for e in examples]
    return score(examples, results)


def evaluate(parser: Parser, test_path: Path = TEST_FILE) -> EvalReport:
    """Score `parser` on a Rasa-format test file (from synchronous code)."""
    return asyncio.run(evaluate_async(parser, test_path))


def format_reports(reports: dict[str, EvalReport]) -> str:
    """Side-by-side table of several parsers' figures."""
    names = list(reports)
    width = 12
    lines = ["".ljust(22) + "".join(n.rjust(width) for n in names)]

    def row(label: str, values: list[float]) -> None:
        lines.append(label.ljust(22) + "".join(f"{v:.3f}".rjust(width) for v in values))

    first = next(iter(reports.values()))
    lines.append(f"test examples: {first.examples}")
    row("intent accuracy", [r.accuracy for r in reports.values()])
    row("intent macro F1", [r.macro_f1 for r in reports.values()])
    row("entity precision", [r.entity_precision for r in reports.values()])
    row("entity recall", [r.entity_recall for r in reports.values()])
    row("entity F1", [r.entity_f1 for r in reports.values()])
    for label in first.intents:
        row(f"  F1 {label}", [r.intents[label].f1 if label in r.intents else 0.0 for r in reports.values()])
    entity_names = sorted({n for r in reports.values() for n in r.entities})
    empty = Score(0.0, 0.0, 0.0, 0)
    for name in entity_names:
        row(f"  P {name}", [r.entities.get(name, empty).precision for r in reports.values()])
        row(f"  R {name}", [r.entities.get(name, empty).recall for r in reports.values()])
    for parser_name, report in reports.items():
        for miss in report.misses:
            lines.append(f"[{parser_name}] {miss.text!r}: expected {miss.expected}, got {miss.got}")
    return "\n".join(lines)


class _NoFallback:
    """Makes a Rasa failure visible in the evaluation instead of scoring the built-in parser twice."""

    async def parse(self, text: str) -> ParseResult:
        raise RuntimeError("the Rasa server did not answer")


async def _run(test_path: Path, rasa_url: str | None) -> dict[str, EvalReport]:
    from nlu.builtin import BuiltinParser

    reports = {"builtin": await evaluate_async(BuiltinParser.from_file(), test_path)}
    if rasa_url:
        from nlu.rasa import RasaParser

        async with RasaParser(rasa_url, fallback=_NoFallback(), timeout_s=10.0) as rasa:
            reports["rasa"] = await evaluate_async(rasa, test_path)
    return reports


def main(argv: list[str] | None = None) -> int:
    """`python -m nlu.evaluate`: print the figures; exit 1 when Rasa was asked for and failed."""
    parser = argparse.ArgumentParser(description="Score the NLU parsers on the held-out test file.")
    parser.add_argument("--test", type=Path, default=TEST_FILE, help="Rasa-format test file")
    parser.add_argument("--rasa-url", default=None, help="also score the Rasa server at this URL")
    parser.add_argument("--values", type=Path, default=VALUES_FILE, help="tips with their expected values")
    args = parser.parse_args(argv)
    try:
        reports = asyncio.run(_run(args.test, args.rasa_url))
    except RuntimeError as exc:
        print(f"evaluation failed: {exc}", file=sys.stderr)
        return 1
    print(format_reports(reports))
    print()
    print(format_values(score_values(load_values(args.values), default_towns())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
