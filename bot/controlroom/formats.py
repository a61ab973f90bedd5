"""Numbers, money and counted nouns the way the control room's language writes them."""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from bot.texts import Catalogue, MissingText


def number(value: int, lang: str = "nl") -> str:
    """`1234` → `1.234` in Dutch, `1,234` in English."""
    grouped = f"{int(value):,}"
    return grouped.replace(",", ".") if lang == "nl" else grouped


def euro(value: float, lang: str = "nl") -> str:
    """An amount in euro: `€ 1.234,56` in Dutch, `€1,234.56` in English; cents rounded half up."""
    cents = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "-" if cents < 0 else ""
    whole, _, fraction = f"{abs(cents):,.2f}".partition(".")
    if lang == "nl":
        return f"{sign}€ {whole.replace(',', '.')},{fraction}"
    return f"{sign}€{whole}.{fraction}"


def counter(catalogue: Catalogue, lang: str) -> Callable[[int, str], str]:
    """`n(3, "participant")` → `3 deelnemers`: `controlroom.count.<noun>.one` or `.other`."""

    def n(value: int, noun: str) -> str:
        form = "one" if value == 1 else "other"
        try:
            return catalogue.render(lang, f"controlroom.count.{noun}.{form}", n=number(value, lang))
        except MissingText:
            return f"{number(value, lang)} {noun}"

    return n
