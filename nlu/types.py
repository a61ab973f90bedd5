"""The NLU result, in the shape of Rasa's `POST /model/parse` answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Intent:
    """An intent name with its confidence (0..1)."""

    name: str
    confidence: float


@dataclass(frozen=True)
class Entity:
    """A span of the text with its meaning; `value` may be normalised (a time, a plate)."""

    entity: str
    value: Any
    start: int
    end: int
    confidence: float = 1.0
    extractor: str = "builtin"


@dataclass(frozen=True)
class ParseResult:
    """The text, its best intent, the ranking and the entities."""

    text: str
    intent: Intent
    entities: tuple[Entity, ...] = ()
    intent_ranking: tuple[Intent, ...] = field(default=())

    def to_rasa(self) -> dict[str, Any]:
        """The same result as Rasa's JSON."""
        return {
            "text": self.text,
            "intent": {"name": self.intent.name, "confidence": self.intent.confidence},
            "entities": [
                {
                    "entity": e.entity,
                    "value": e.value,
                    "start": e.start,
                    "end": e.end,
                    "confidence_entity": e.confidence,
                    "extractor": e.extractor,
                }
                for e in self.entities
            ],
            "intent_ranking": [{"name": i.name, "confidence": i.confidence} for i in self.intent_ranking],
        }


class Parser(Protocol):
    """Anything that turns a text into a `ParseResult`."""

    async def parse(self, text: str) -> ParseResult:
        """Parse one message."""
        ...


@runtime_checkable
class InProcessParser(Parser, Protocol):
    """A parser that computes in this process without waiting on I/O, so a worker thread may call it."""

    def parse_sync(self, text: str) -> ParseResult:
        """Parse one message without awaiting anything."""
        ...
