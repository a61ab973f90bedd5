"""Built-in NLU speed: training time, parse p50/p99, next to a bare `re` keyword match in the same run.

Run: `.venv/bin/python -m bench.nlu_bench [--rounds N]`. The goal (issue 5) is a parse p99 under 5 ms.
The baseline is the cheapest thing a bot could do instead (one regex per intent), so the ratio says what
the model and the entity rules cost on this machine, whatever its speed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from nlu.builtin import BuiltinParser
from nlu.entities import extract_tip_entities
from nlu.training import TEST_FILE, load_training_data

GOAL_P99_MS = 5.0
RECEIVED = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)

# What a keyword bot would do: the first intent whose words occur in the text.
KEYWORDS = {
    "unsubscribe": r"\b(stop|afmelden|uitschrijven|unsubscribe)\b",
    "register": r"\b(aanmelden|inschrijven|registreren|register|sign up)\b",
    "change_address": r"\b(verhuisd|adres|postcode|address|moved)\b",
    "my_data": r"\b(gegevens|data|details)\b",
    "help": r"\b(help|hulp|uitleg|hoe)\b",
    "affirm": r"^(ja|yes|ok|oke|klopt)\b",
    "deny": r"^(nee|no|nope)\b",
    "greet": r"^(hoi|hallo|hey|hi|hello|goedemorgen)\b",
    "give_tip": r"\b(zag|gezien|saw|kenteken|richting)\b",
}


def _keyword_parser() -> Callable[[str], str]:
    compiled = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in KEYWORDS.items()]

    def parse(text: str) -> str:
        for name, pattern in compiled:
            if pattern.search(text):
                return name
        return "out_of_scope"

    return parse


def _timings_ms(fn: Callable[[str], object], texts: list[str], rounds: int) -> list[float]:
    for text in texts:  # warm caches (regex compilation, numpy dispatch)
        fn(text)
    out = []
    for _ in range(rounds):
        for text in texts:
            start = time.perf_counter_ns()
            fn(text)
            out.append((time.perf_counter_ns() - start) / 1e6)
    return out


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> int:
    """Print training time and parse latency figures; exit 1 when the p99 goal is missed."""
    args_parser = argparse.ArgumentParser(description=__doc__)
    args_parser.add_argument("--rounds", type=int, default=30, help="passes over the test sentences")
    args = args_parser.parse_args(argv)

    texts = [e.text for e in load_training_data(TEST_FILE).examples]
    start = time.perf_counter()
    parser = BuiltinParser.from_file(clock=lambda: RECEIVED)
    train_s = time.perf_counter() - start

    keyword = _keyword_parser()
    rows = {
        "re keyword match (baseline)": _timings_ms(keyword, texts, args.rounds),
        "builtin intent only": _timings_ms(parser.classify, texts, args.rounds),
        "entity rules only": _timings_ms(lambda t: extract_tip_entities(t, RECEIVED), texts, args.rounds),
        "builtin parse (intent + entities)": _timings_ms(parser.parse_sync, texts, args.rounds),
    }
    base_p50 = statistics.median(rows["re keyword match (baseline)"])
    base_p99 = _percentile(rows["re keyword match (baseline)"], 99)
    print(f"built-in NLU: trained on nlu.yml in {train_s:.2f} s; {len(texts)} test sentences x {args.rounds}")
    print(f"{'':36}{'p50 ms':>10}{'p99 ms':>10}{'x p50':>10}{'x p99':>10}")
    for name, values in rows.items():
        p50, p99 = statistics.median(values), _percentile(values, 99)
        print(f"{name:36}{p50:10.3f}{p99:10.3f}{p50 / base_p50:10.1f}{p99 / base_p99:10.1f}")
    p99 = _percentile(rows["builtin parse (intent + entities)"], 99)
    verdict = "met" if p99 < GOAL_P99_MS else "MISSED"
    print(f"goal: parse p99 < {GOAL_P99_MS} ms: {verdict} ({p99:.3f} ms)")
    return 0 if p99 < GOAL_P99_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
