"""A parser that asks a Rasa server (`POST /model/parse`) and falls back to another parser when it cannot."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from nlu.types import Entity, Intent, Parser, ParseResult

log = logging.getLogger(__name__)

# Rasa answers an empty or unintelligible text with intent name null.
UNKNOWN_INTENT = "nlu_fallback"


class RasaResponseError(Exception):
    """Rasa answered, but not with a `/model/parse` result we can read."""


def result_from_rasa(text: str, payload: Any) -> ParseResult:
    """Turn Rasa's `/model/parse` JSON into a `ParseResult`; raise `RasaResponseError` on a foreign shape."""
    if not isinstance(payload, dict):
        raise RasaResponseError("answer is not a JSON object")
    try:
        intent = _intent(payload.get("intent") or {})
        ranking = tuple(_intent(i) for i in payload.get("intent_ranking") or ())
        entities = tuple(_entity(e) for e in payload.get("entities") or ())
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RasaResponseError(f"unexpected field: {exc!r}") from exc
    return ParseResult(text=text, intent=intent, entities=entities, intent_ranking=ranking)


def _intent(raw: dict[str, Any]) -> Intent:
    return Intent(name=raw.get("name") or UNKNOWN_INTENT, confidence=float(raw.get("confidence") or 0.0))


def _entity(raw: dict[str, Any]) -> Entity:
    # RegexEntityExtractor and EntitySynonymMapper leave out confidence_entity: they are certain.
    confidence = raw.get("confidence_entity")
    return Entity(
        entity=str(raw["entity"]),
        value=raw.get("value"),
        start=int(raw["start"]),
        end=int(raw["end"]),
        confidence=1.0 if confidence is None else float(confidence),
        extractor=str(raw.get("extractor") or "rasa"),
    )


class RasaParser:
    """Parses with a Rasa server; when Rasa is slow, down or broken, logs a warning and asks `fallback`.

    After a failure Rasa is left alone for `retry_after_s`, so a dead server costs one timeout, not
    one per message.
    """

    def __init__(
        self,
        url: str,
        *,
        fallback: Parser,
        timeout_s: float = 0.5,
        retry_after_s: float = 5.0,
        client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._parse_url = url.rstrip("/") + "/model/parse"
        self._fallback = fallback
        self._timeout = httpx.Timeout(timeout_s)
        self._retry_after_s = retry_after_s
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._monotonic = monotonic
        self._resting_until: float | None = None

    async def parse(self, text: str) -> ParseResult:
        """Rasa's reading of `text`, or the fallback's when Rasa cannot answer."""
        if self._resting_until is not None and self._monotonic() < self._resting_until:
            return await self._fallback.parse(text)
        try:
            result = await self._ask_rasa(text)
        except (httpx.HTTPError, RasaResponseError) as exc:
            # Never log the text: it is a citizen's message.
            log.warning(
                "Rasa at %s failed (%s); using the fallback parser for %.0f s",
                self._parse_url,
                _describe(exc),
                self._retry_after_s,
            )
            self._resting_until = self._monotonic() + self._retry_after_s
            return await self._fallback.parse(text)
        if self._resting_until is not None:
            log.info("Rasa at %s answers again", self._parse_url)
            self._resting_until = None
        return result

    async def _ask_rasa(self, text: str) -> ParseResult:
        response = await self._client.post(self._parse_url, json={"text": text}, timeout=self._timeout)
        response.raise_for_status()
        try:
            payload = response.json()
        except ValueError as exc:
            raise RasaResponseError("answer is not JSON") from exc
        return result_from_rasa(text, payload)

    async def aclose(self) -> None:
        """Close the HTTP client if this parser made it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> RasaParser:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    return type(exc).__name__
