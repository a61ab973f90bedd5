"""The single-word commands (STOP, HELP, ...) that work on every channel, at any moment, and how to spot one.

The router acts on them before any flow; a flow (the tip flow) asks whether a text is one. They live
beside the flows, below the router, so that both can read them.
"""

from __future__ import annotations

from enum import StrEnum

from bot.flows.engine import normalise
from bot.flows.help import LANGUAGE_KEYWORDS
from bot.flows.preferences import preference_command


class Keyword(StrEnum):
    """Single-word commands that work on every channel, at any moment."""

    STOP = "stop"
    START = "start"
    HELP = "help"
    MY_DATA = "my_data"
    ADDRESS = "address"
    CANCEL = "cancel"
    LANGUAGE = "language"
    EXERCISES_ON = "exercises_on"
    EXERCISES_OFF = "exercises_off"
    PREFERENCES = "preferences"
    PREFERENCE_CHANGE = "preference_change"
    """GEEN/WEL <soort>, STIL <uren>, STIL UIT (and English): a command with its argument."""
    MY_DATA_EXPORT = "my_data_export"


# Twilio's standard opt-out words plus the Dutch ones; CANCEL is an opt-out word there, so the
# word that only ends the current conversation is ANNULEER.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        [
            "stop",
            "stoppen",
            "uit",
            "afmelden",
            "stopall",
            "unsubscribe",
            "end",
            "quit",
            "cancel",
            "/stop",
            "/afmelden",
            "/unsubscribe",
        ],
        Keyword.STOP,
    ),
    **dict.fromkeys(["start", "aanmelden", "unstop", "/start", "/aanmelden", "/register"], Keyword.START),
    **dict.fromkeys(["help", "hulp", "info", "/help", "/hulp", "/info"], Keyword.HELP),
    **dict.fromkeys(
        [
            "mijn gegevens",
            "mijngegevens",
            "/mijngegevens",
            "/gegevens",
            "my data",
            "mydata",
            "/mydata",
            "my details",
        ],
        Keyword.MY_DATA,
    ),
    **dict.fromkeys(
        ["adres", "address", "/adres", "/address", "adres wijzigen", "change address"], Keyword.ADDRESS
    ),
    **dict.fromkeys(
        [
            "annuleer",
            "annuleren",
            "afbreken",
            "cancel flow",
            "/annuleer",
            "/cancel",
            "stop flow",
            "laat maar",
            "laat maar zitten",
            "laatmaar",
            "lat maar",
            "stop maar",
            "stop er maar mee",
            "hou maar op",
            "laat ook maar",
            "never mind",
            "nevermind",
            "forget it",
        ],
        Keyword.CANCEL,
    ),
    **dict.fromkeys(LANGUAGE_KEYWORDS, Keyword.LANGUAGE),
    **dict.fromkeys(
        ["oefeningen aan", "oefening aan", "exercises on", "/oefeningen_aan", "/exercises_on"],
        Keyword.EXERCISES_ON,
    ),
    **dict.fromkeys(
        ["oefeningen uit", "oefening uit", "exercises off", "/oefeningen_uit", "/exercises_off"],
        Keyword.EXERCISES_OFF,
    ),
    **dict.fromkeys(
        ["voorkeuren", "voorkeur", "preferences", "my preferences", "/voorkeuren", "/preferences"],
        Keyword.PREFERENCES,
    ),
    **dict.fromkeys(
        [
            "mijn gegevens export",
            "mijngegevens export",
            "export mijn gegevens",
            "gegevens exporteren",
            "my data export",
            "mydata export",
            "export my data",
            "/export",
        ],
        Keyword.MY_DATA_EXPORT,
    ),
}


def keyword_of(text: str) -> Keyword | None:
    """The keyword a message is, if it is one (case, spaces, punctuation and `@botname` ignored)."""
    value = normalise(text)
    if value.startswith("/"):
        command, _, rest = value.partition(" ")
        value = command.split("@", 1)[0]
        if rest and value != "/start":
            return None
    found = KEYWORDS.get(value)
    if found is None and preference_command(value) is not None:
        return Keyword.PREFERENCE_CHANGE
    return found
