"""The word pre-checks of the entity and time rules are conservative: they never skip where a rule matches."""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from nlu import dutch_time, entities
from nlu.words import Words, fold, words_of
from tests.nlu.test_dutch_time import TOKENS
from tests.nlu.test_entity_reference import SENTENCES, _vocabulary

RULES = [*entities._DIRECTION_RULES, *entities._PLACE_RULES, *entities._DESCRIPTION_RULES]
GATES = [
    dutch_time._AGO_WORDS,
    dutch_time._PAST_TO,
    dutch_time._OVER_VOOR_HALF,
    dutch_time._TRIGGERS,
    dutch_time._NOW_WORDS,
    frozenset({"uur", "of", "week"}),
]
GATE_WORDS = [w for gate in [*GATES, *(first for first, _ in dutch_time._BEGINS.values())] for w in gate]
RULE_WORDS = [w for r in RULES for words in (r.starts, r.needs) if words for w in words]
# Adding these to a text's words opens every gate of the time rules: the scan then tries every rule.
OPEN = frozenset(GATE_WORDS) | {"vandaag"}
ALL_CHARACTERS = "".join(chr(c) for c in range(sys.maxunicode + 1))


def test_folding_keeps_length_and_word_characters() -> None:
    folded = fold(ALL_CHARACTERS)
    assert len(folded) == len(ALL_CHARACTERS)
    word = re.compile(r"[\w-]")
    assert [m.start() for m in word.finditer(folded)] == [m.start() for m in word.finditer(ALL_CHARACTERS)]


def test_whatever_a_vocabulary_letter_matches_folds_to_it() -> None:
    vocabulary = [
        *RULE_WORDS,
        *GATE_WORDS,
        *dutch_time._DAY_TOKENS,
        *entities._STREET_SUFFIXES,
    ]
    letters = {c for word in vocabulary for c in word}
    folded = fold(ALL_CHARACTERS)
    for letter in sorted(letters):
        matched = {m.start() for m in re.finditer(re.escape(letter), ALL_CHARACTERS, re.IGNORECASE)}
        assert {folded[i] for i in matched} == {letter}, letter


def test_vocabulary_is_folded() -> None:
    for word in [*RULE_WORDS, *GATE_WORDS, *dutch_time._DAY_TOKENS]:
        assert fold(word) == word and re.fullmatch(r"[\w-]+", word), word


ODD = ["ſ", "K", "İ", "ı", "ß", "É", "Ë", "’", "'", "٣", "\u00a0", "-", "_", "1", "12", "9.30", "A12", "N3"]
# Multi-word openings of the rules, which random words rarely make.
PHRASES = [
    "a moment ago",
    "just now",
    "right now",
    "op dit moment",
    "zo net",
    "daar net",
    "nu net",
    "zo-even",
    "in the direction of",
    "heading to",
    "in de richting van",
    "in de buurt van",
    "op de hoek van",
    "last night",
    "'s avonds",
    "’s nachts",
    "des morgens",
    "in de ochtend",
    "in the morning",
    "at night",
    "een uur of",
    "a quarter of an hour ago",
    "half past",
    "kwart over",
    "vijf voor half",
    "om de klok van",
    "ca.",
    "9 u",
    "22u30",
    "vorige week",
    "last week",
    "3 maart",
    "12-11",
    "noordwaarts",
    "northbound",
    "de A12 op",
]
pieces = st.one_of(
    st.sampled_from(PHRASES),
    st.sampled_from(RULE_WORDS + GATE_WORDS + TOKENS + ODD + _vocabulary()),
    st.sampled_from(entities._STREET_SUFFIXES).map(lambda s: "Kerk" + s),
    st.text(max_size=3),
)
cased = st.tuples(pieces, st.sampled_from([str, str.upper, str.capitalize, str.swapcase])).map(
    lambda p: p[1](p[0])
)
glue = st.sampled_from([" ", " ", "  ", "-", ", ", ".", "'", "’", "\n", ""])
texts = st.one_of(
    st.lists(st.tuples(cased, glue).map("".join), max_size=14).map("".join),
    st.tuples(st.sampled_from(SENTENCES), glue, cased).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_every_match_begins_where_the_rule_is_tried(text: str) -> None:
    words = words_of(text)
    for rule in RULES:
        candidates = set(rule.candidates(text, words))
        for m in rule.pattern.finditer(text):
            assert m.start() in candidates, (rule.pattern.pattern[:60], m)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_skipped_time_rules_would_have_found_nothing(text: str) -> None:
    words = words_of(text)
    has_digit = re.search(r"\d", text) is not None
    opened = Words(words.at, words.present | OPEN)
    assert dutch_time._scan(text, [], words, has_digit) == dutch_time._scan(text, [], opened, True)
    if not has_digit and "week" not in words.present:
        assert dutch_time._DATE_CUE.search(text) is None
    for pattern in dutch_time._BEGINS:
        starts = set(dutch_time._starts(pattern, words))
        assert all(m.start() in starts for m in pattern.finditer(text)), pattern.pattern[:60]


def test_a_long_text_is_read_as_its_first_2000_characters() -> None:
    moment = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    texts = [f * (2000 // len(f)) + "netto om 9 uur een rode jas" for f in ("x", "ab ", "Kerkstraat ")]
    texts.append("a" * 1996 + " nettoyage om 9 uur")  # cut to "... net": just now
    for text in texts:
        assert entities.find_spans(text, moment) == entities.find_spans(text[:2000], moment)
        assert dutch_time.find_times(text, moment) == dutch_time.find_times(text[:2000], moment)
        words = words_of(text)  # of the whole text: find_times_in reads the words of what it keeps
        assert dutch_time.find_times_in(text, moment, "Europe/Amsterdam", words) == dutch_time.find_times(
            text[:2000], moment
        )
