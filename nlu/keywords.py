"""Phrases per intent, Dutch and English: how the tip flow tells that a follow-up asks for something else.

Not the system's NLU (that is the built-in model or Rasa, chosen in nlu/factory.py); tests also use it
as a parser whose answers are fixed.
"""

from __future__ import annotations

import re
import unicodedata

from nlu.types import Intent, ParseResult

# Checked in this order: the first intent with a matching phrase wins, so the specific come first
# ("afmelden" before "aanmelden", "mijn adres" before "mijn gegevens").
INTENT_PHRASES: dict[str, tuple[str, ...]] = {
    "unsubscribe": (
        "afmelden",
        "uitschrijven",
        "uitschrijving",
        "opzeggen",
        "geen berichten meer",
        "geen meldingen meer",
        "stop met",
        "wil stoppen",
        "niet meer meedoen",
        "verwijder mij",
        "verwijder me",
        "unsubscribe",
        "opt out",
        "remove me",
        "stop sending",
        "no more messages",
        "delete my data",
        "wis mijn gegevens",
        "cancel my",
        "leave burgernet",
    ),
    "change_address": (
        "adres wijzigen",
        "adres veranderen",
        "nieuw adres",
        "ander adres",
        "verhuisd",
        "verhuis",
        "verhuizen",
        "mijn adres",
        "werkadres",
        "tweede adres",
        "extra adres",
        "adres toevoegen",
        "adres verwijderen",
        "change address",
        "change my address",
        "new address",
        "moved",
        "moving",
        "work address",
        "second address",
        "add an address",
        "my address",
    ),
    "my_data": (
        "mijn gegevens",
        "wat weten jullie",
        "welke gegevens",
        "inzage",
        "wat hebben jullie",
        "gegevens inzien",
        "wat staat er",
        "avg",
        "my data",
        "my details",
        "what do you know",
        "what data",
        "my information",
        "personal data",
        "gdpr",
    ),
    "register": (
        "aanmelden",
        "aanmelding",
        "inschrijven",
        "registreren",
        "meedoen",
        "deelnemen",
        "deelnemer worden",
        "lid worden",
        "meld me aan",
        "meld mij aan",
        "register",
        "sign up",
        "signup",
        "subscribe",
        "join",
        "enrol",
        "enroll",
    ),
    "give_tip": (
        "ik zag",
        "ik heb gezien",
        "gezien",
        "zag een",
        "zag ik",
        "verdacht",
        "verdachte",
        "rende",
        "liep",
        "reed",
        "richting",
        "kenteken",
        "tip",
        "vermist",
        "vermiste",
        "signalement",
        "i saw",
        "i have seen",
        "seen",
        "suspicious",
        "running",
        "heading",
        "licence plate",
        "license plate",
        "ran towards",
    ),
    "help": (
        "help",
        "hulp",
        "hoe werkt",
        "wat kan",
        "wat doe",
        "uitleg",
        "informatie",
        "vraag",
        "how does",
        "what can",
        "how do i",
        "explain",
        "what is this",
        "wat is dit",
        "wat is burgernet",
    ),
    "greet": (
        "hoi",
        "hallo",
        "hey",
        "hee",
        "hai",
        "goedemorgen",
        "goedemiddag",
        "goedenavond",
        "dag",
        "hi",
        "hello",
        "good morning",
        "good afternoon",
        "good evening",
        "yo",
    ),
    "deny": ("nee", "neen", "no", "nope", "klopt niet"),
    "affirm": (
        "ja",
        "jazeker",
        "klopt",
        "prima",
        "yes",
        "yep",
        "yeah",
        "ok",
        "oke",
        "okay",
        "correct",
        "sure",
    ),
}

MATCH_CONFIDENCE = 0.9
FALLBACK_CONFIDENCE = 0.6


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s']", " ", stripped).split())


_PATTERNS = {
    intent: re.compile(r"\b(?:" + "|".join(re.escape(_fold(p)) for p in phrases) + r")\b")
    for intent, phrases in INTENT_PHRASES.items()
}


class KeywordParser:
    """Finds the first intent whose phrase occurs in the text; otherwise `out_of_scope`."""

    async def parse(self, text: str) -> ParseResult:
        """Parse one message."""
        return self.parse_sync(text)

    def parse_sync(self, text: str) -> ParseResult:
        """The same, without the event loop."""
        folded = _fold(text)
        hits = [intent for intent, pattern in _PATTERNS.items() if folded and pattern.search(folded)]
        if not hits:
            best = Intent("out_of_scope", FALLBACK_CONFIDENCE)
            return ParseResult(text=text, intent=best, intent_ranking=(best,))
        ranking = tuple(Intent(name, MATCH_CONFIDENCE - 0.1 * i) for i, name in enumerate(hits))
        return ParseResult(text=text, intent=ranking[0], intent_ranking=ranking)
