"""The entity and time rules give exactly the answers they gave when `entities_reference.json` was recorded.

The fixture holds a corpus of a few thousand texts (the test tables, their mixes, random runs of the rules'
own vocabulary, numbers, plates, postcodes, odd case and Unicode) and a digest of every finder's output for
each, recorded before the finders were made faster. Regenerate it only for an intended change of results:
`PYTHONPATH=. .venv/bin/python -m tests.nlu.test_entity_reference` (and say so in the commit).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nlu import dutch_time, entities
from nlu.dutch_time import find_times
from nlu.entities import find_descriptions, find_directions, find_places, find_spans
from tests.nlu.test_dutch_time import CASES, TOKENS
from tests.nlu.test_entities import TIPS

FIXTURE = Path(__file__).with_name("entities_reference.json")
MOMENTS = (
    datetime(2026, 11, 20, 14, 30, tzinfo=UTC),  # Friday afternoon
    datetime(2026, 11, 21, 0, 10, tzinfo=UTC),  # just after midnight
    datetime(2026, 3, 29, 8, 0, tzinfo=UTC),  # the morning the clocks went forward
)
# The time rules' patterns when the fixture was recorded.
TIME_PATTERNS = (
    "_RELATIVE",
    "_QUARTER_AGO",
    "_JUST_NOW",
    "_DAY_WORDS",
    "_CLOCK_NUMERIC",
    "_CLOCK_TRIGGERED",
    "_UUR_OF",
    "_WORD_HOUR",
    "_HALF_PAST",
    "_DUTCH_OVER",
    "_GLUE",
    "_DATE_CUE",
)
SEED = 20261120
COUNT = 3000

SENTENCES = [
    *(p.values[0] for p in TIPS),
    *(c[0] for c in CASES),
    "BN-4821 Ik zag om 15:10 twee mannen op een zwarte scooter bij de Jumbo, richting centrum #17",
    "Ik zag hem om 15:10 bij de Jumbo, hij liep richting station",
    "Bij het station, een kwartier geleden",
    "Hij had een rode rugzak",
    "Ik zag hem weer, nu bij de Albert Heijn om 15:40",
    "saw a boy in a blue jacket",
    "near the station at 15:20",
    "Deze auto stond hier net",
    "net, 5 minuten geleden",
    "Ik zag om 15:10 een man met een rode jas bij de Jumbo",
    "hallo, hoe gaat het met jou?",
    "hij was 1.80 lang",
    "net als vorige keer niks gezien",
    "2 mannen en 3 vrouwen",
    "ja",
    "nee",
    "hij liep naar het station",
    "",
]
# Characters where case-insensitive matching and str.lower() part ways, and other odd ones.
ODD = ["ſ", "K", "İ", "ı", "ß", "ẞ", "é", "É", "ë", "Ë", "’", "'", "٣", "\u00a0", "\t", "\n", "-", "--", "µ"]
# Openings of the direction and place rules, so that random words after them get read.
# fmt: off
LEADS = [
    "richting", "in de richting van", "richting de", "naar het", "in", "heading", "towards the",
    "rende naar", "liep weg naar de", "reed met de auto naar", "ging", "fled to", "de", "op de", "bij de",
    "in de buurt van", "near", "op de hoek van", "te", "uit", "naast het", "in het", "gekleed", "en",
]
# fmt: on
# Look-alikes that case-insensitive matching equates with a plain letter.
ODD_CASE = {"s": "ſ", "k": "K", "i": "ı"}
PUNCT = [" ", " ", " ", "  ", ", ", ". ", "-", "/", ":", ".", "(", ")", "#", "!", "?", "\n", "'s ", "’s "]


def _source(pattern: object) -> str:
    """A rule's pattern text, whether the rule is a compiled pattern or holds one."""
    return pattern.pattern if isinstance(pattern, re.Pattern) else str(pattern)


def _vocabulary() -> list[str]:
    """Every word-like piece of the rules' own patterns (junk such as `np` included, it does no harm)."""
    rules = [*entities._DIRECTION_RULES, *entities._PLACE_RULES, *entities._DESCRIPTION_RULES]
    sources = [
        *(_source(r.pattern) for r in rules),
        *(getattr(dutch_time, name).pattern for name in TIME_PATTERNS),
    ]
    words = {w.replace("\\", "") for s in sources for w in re.findall(r"[\w'’\\-]{1,}", s)}
    return sorted(w for w in words if w and not w.isdigit())


def _token(rng: random.Random, vocabulary: list[str]) -> str:
    kind = rng.random()
    if kind < 0.55:
        word = rng.choice(vocabulary)
    elif kind < 0.65:
        word = rng.choice(TOKENS)
    elif kind < 0.75:
        word = str(rng.choice([rng.randint(0, 30), rng.randint(0, 2500), rng.randint(1000, 9999)]))
    elif kind < 0.8:
        hour, sep, minute = (
            rng.randint(0, 25),
            rng.choice([":", ".", "u", "u", " uur", "h", ""]),
            rng.randint(0, 70),
        )
        word = f"{hour}{sep}{minute:02d}"
    elif kind < 0.85:
        plate = "".join(rng.choice("BDFGHJKLNPRSTVXZ0123456789AEIOU") for _ in range(6))
        word = rng.choice(
            [plate, f"{plate[:2]}-{plate[2:4]}-{plate[4:]}", f"{plate[:2]}-{plate[2:5]}-{plate[5]}"]
        )
    elif kind < 0.88:
        word = f"{rng.randint(1000, 9999)}{rng.choice(['', ' '])}{rng.choice(['AB', 'ab', 'SS', 'Nb', 'zz'])}"
    elif kind < 0.9:
        word = rng.choice(["BN-", "bn ", "Bn", "BN"]) + str(rng.randint(0, 99999))
    elif kind < 0.94:
        word = rng.choice(ODD)
    else:
        word = rng.choice(vocabulary) + rng.choice(["straat", "weg", "laan", "plein", "-", "s", "en", "e"])
    case = rng.random()
    if case < 0.15:
        word = word.upper()
    elif case < 0.3:
        word = word.capitalize()
    elif case < 0.33:
        word = "".join(rng.choice([c.upper(), c, ODD_CASE.get(c, c), c]) for c in word)
    return word


def corpus() -> list[str]:
    """The texts of the fixture, from a fixed seed."""
    rng = random.Random(SEED)
    vocabulary = _vocabulary()
    texts = list(SENTENCES)
    while len(texts) < COUNT:
        kind = rng.random()
        if kind < 0.2:
            text = rng.choice(SENTENCES) + rng.choice(PUNCT) + rng.choice(SENTENCES)
        elif kind < 0.35:  # a sentence with a few words changed
            words = rng.choice(SENTENCES).split(" ")
            for _ in range(rng.randint(1, 3)):
                words[rng.randrange(len(words))] = _token(rng, vocabulary)
            text = " ".join(words)
        elif kind < 0.42:
            text = rng.choice(SENTENCES)
            text = rng.choice([text.upper(), text.lower(), text.title(), text.swapcase()])
        elif kind < 0.6:
            text = " ".join(
                rng.choice(LEADS) + " " + " ".join(_token(rng, vocabulary) for _ in range(rng.randint(1, 3)))
                for _ in range(rng.randint(1, 3))
            )
        else:
            text = "".join(_token(rng, vocabulary) + rng.choice(PUNCT) for _ in range(rng.randint(1, 14)))
        texts.append(text.strip(" ") if rng.random() < 0.5 else text)
    return texts


def outputs(text: str) -> object:
    """Everything the finders say about `text`, as plain JSON values."""
    return {
        "spans": [
            [[s.entity, s.start, s.end, s.value] for s in find_spans(text, moment)] for moment in MOMENTS
        ],
        "times": [
            [[m.start, m.end, m.text, m.value.isoformat(), m.approximate] for m in find_times(text, moment)]
            for moment in MOMENTS[:2]
        ],
        "directions": [[s.start, s.end, s.value] for s in find_directions(text)],
        "places": [[s.start, s.end, s.value] for s in find_places(text)],
        "descriptions": [[s.start, s.end, s.value] for s in find_descriptions(text)],
    }


def digest(value: object) -> str:
    """A short stable digest of a JSON value."""
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def _reference() -> list[tuple[str, str]]:
    return [(t, d) for t, d in json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]]


def test_corpus_is_the_recorded_one() -> None:
    assert [t for t, _ in _reference()] == corpus()


@pytest.mark.parametrize("chunk", range(10))
def test_finders_give_the_recorded_answers(chunk: int) -> None:
    cases = _reference()[chunk::10]
    wrong = [text for text, expected in cases if digest(outputs(text)) != expected]
    assert wrong == []


def main() -> None:
    """Record the current finders' answers for the corpus."""
    cases = [[text, digest(outputs(text))] for text in corpus()]
    FIXTURE.write_text(
        json.dumps({"seed": SEED, "cases": cases}, ensure_ascii=False, indent=0) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
