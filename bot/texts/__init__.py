"""The message catalogues: every text a person reads, per language (Dutch default, English)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
_HERE = Path(__file__).parent


class MissingText(KeyError):
    """A key that one of the catalogues lacks."""


class Catalogue:
    """Texts by language and dotted key (`registration.ask_postcode`), with `{placeholders}`."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]]) -> None:
        self._texts = texts

    @classmethod
    def load(cls, folder: Path = _HERE) -> Catalogue:
        """Read `nl.yml` and `en.yml` from the folder."""
        texts: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            raw = yaml.safe_load((folder / f"{lang}.yml").read_text(encoding="utf-8")) or {}
            texts[lang] = dict(_flatten(raw))
        return cls(texts)

    def keys(self, lang: str = DEFAULT_LANGUAGE) -> set[str]:
        """Every key the language has."""
        return set(self._texts[lang])

    def has(self, key: str, lang: str = DEFAULT_LANGUAGE) -> bool:
        """Whether the language has the key."""
        return key in self._texts.get(lang, {})

    def render(self, lang: str, key: str, **params: Any) -> str:
        """The text for a key in a language (falling back to Dutch), with placeholders filled."""
        table = self._texts.get(lang) or self._texts[DEFAULT_LANGUAGE]
        template = table.get(key) or self._texts[DEFAULT_LANGUAGE].get(key)
        if template is None:
            raise MissingText(key)
        return template.format(**params).strip()

    def placeholders(self, lang: str, key: str) -> set[str]:
        """The names of the placeholders a text uses."""
        return {name for _, name, _, _ in string.Formatter().parse(self._texts[lang][key]) if name}


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            items.extend(_flatten(value, full + "."))
        else:
            items.append((full, str(value)))
    return items
