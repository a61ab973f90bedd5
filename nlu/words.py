"""The words of a text, folded the way the rules' case-insensitive patterns compare them.

The entity and time rules are regexes tried at every position of a text; most of them can only match where
one of their own words stands. Knowing a text's words lets a finder skip a rule that cannot match, or try
it only where such a word begins, with the same answers as a full scan.

A "word" is a maximal run of `[\\w-]`: every rule starts after `(?<![\\w-])` and ends its words at a
character outside that class, so each vocabulary word a rule matches is one whole word of the text.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

# `re.IGNORECASE` equates these with i and s, str.lower() does not (and lowers İ to two characters).
# tests/nlu/test_words.py checks every code point: folding keeps the length and the word characters,
# and whatever a lower-case letter matches case-insensitively folds to that letter.
_FOLD: Final = {0x130: "i", 0x131: "i", 0x17F: "s"}
_WORD: Final = re.compile(r"[\w-]+")


def fold(text: str) -> str:
    """`text` in lower case, one character for one, with the look-alikes `re.IGNORECASE` equates."""
    if "\u0130" in text or "\u0131" in text or "\u017f" in text:  # rare; translate() is slow
        text = text.translate(_FOLD)
    return text.lower()


class Words(NamedTuple):
    """The folded words of a text: each with where it starts, and the set of them."""

    at: list[tuple[int, str]]
    present: frozenset[str]


def words_of(text: str) -> Words:
    """The words of `text`, folded."""
    at = [(m.start(), m.group()) for m in _WORD.finditer(fold(text))]
    return Words(at, frozenset([word for _, word in at]))


def matches_at(pattern: re.Pattern[str], text: str, starts: list[int]) -> list[re.Match[str]]:
    """What `pattern.finditer(text)` gives, tried only at `starts` (ascending), where its matches begin."""
    found = []
    after = 0
    for at in starts:
        if at >= after and (m := pattern.match(text, at)) is not None:
            found.append(m)
            after = m.end()
    return found


def first_word(phrase: str) -> str:
    """The first word of a vocabulary phrase ("korte broek" → "korte")."""
    m = _WORD.match(phrase)
    if m is None:
        raise ValueError(phrase)
    return m.group()


def last_word(phrase: str) -> str:
    """The last word of a vocabulary phrase ("albert heijn" → "heijn", "mcdonald's" → "s")."""
    return _WORD.findall(phrase)[-1]
