"""Choosing the parser from the settings: the built-in one, or Rasa with the built-in one as its fallback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.config import Settings
from nlu.builtin import BuiltinParser, utc_now
from nlu.types import Parser


def make_parser(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Parser:
    """The built-in parser when `settings.rasa_url` is unset, else a Rasa parser that falls back to it.

    Trains the built-in model (about a second): call once at start-up. The router handles keywords
    (STOP, HELP, action codes) before asking the parser, which only classifies free text.
    A RasaParser holds an HTTP client: close it with `await parser.aclose()` at shutdown.
    """
    builtin = BuiltinParser.from_file(clock=clock, timezone=settings.timezone)
    if settings.rasa_url is None:
        return builtin
    from nlu.rasa import RasaParser

    return RasaParser(settings.rasa_url, fallback=builtin, timeout_s=settings.rasa_timeout_s)
