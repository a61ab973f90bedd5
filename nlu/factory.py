"""Choosing the parser: the built-in one, or Rasa with the built-in one as its fallback.

The caller (the composition root, `bot.runtime.make_parser`) passes what it read from the settings, so
`nlu` stays a layer of its own that imports nothing from `bot`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from nlu.builtin import BuiltinParser, utc_now
from nlu.types import Parser


def make_parser(
    *,
    rasa_url: str | None = None,
    rasa_timeout_s: float = 0.5,
    timezone: str = "Europe/Amsterdam",
    clock: Callable[[], datetime] = utc_now,
) -> Parser:
    """The built-in parser when `rasa_url` is None, else a Rasa parser that falls back to it.

    Trains the built-in model (once per process for the same training file). The router handles keywords
    (STOP, HELP, action codes) before asking the parser, which only classifies free text.
    A RasaParser holds an HTTP client: close it with `await parser.aclose()` at shutdown.
    """
    builtin = BuiltinParser.from_file(clock=clock, timezone=timezone)
    if rasa_url is None:
        return builtin
    from nlu.rasa import RasaParser

    return RasaParser(rasa_url, fallback=builtin, timeout_s=rasa_timeout_s)
