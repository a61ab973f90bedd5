"""Server-sent events for the API's tip stream and the control room's live page: their rules in one place.

sse-starlette does the wire work: the encoding (`ServerSentEvent`), the keep-alive comment every
`KEEPALIVE_S`, ending the producer when the client hangs up or the server shuts down, HEAD without a
stream. Here: the reconnect delay a browser is told, which event id a stream resumes after
(`resume_after`), the encoder both streams use, and the response they return. A producer yields text
chunks (one or more encoded events each, written to the socket at once), so a batch of events costs
one write.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

RETRY_MS = 2000  # how long a browser waits before it reconnects
KEEPALIVE_S = 15.0  # a comment at least this often keeps proxies from closing a quiet stream
MAX_EVENT_ID = 2**31 - 1  # event ids are 32-bit row ids: a larger Last-Event-ID is no id of ours
SEPARATOR = "\n"


def event(name: str, data: Any, *, event_id: int | None = None) -> str:
    """One event: its name, its data as compact JSON, and its id when the client may resume after it."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    encoded = ServerSentEvent(
        body, event=name, id=None if event_id is None else str(event_id), sep=SEPARATOR
    ).encode()
    return encoded.decode("utf-8")


def opening() -> str:
    """The stream's first chunk: how long the browser waits before it reconnects."""
    return ServerSentEvent(retry=RETRY_MS, sep=SEPARATOR).encode().decode("utf-8")


def resume_after(last_event_id: str | None, after: int | None) -> int | None:
    """Where a stream starts: after the `Last-Event-ID` a reconnecting client sends, else after `after`.

    A header that is not a decimal id of ours is ignored, as if the client had sent none.
    """
    if last_event_id is not None:
        text = last_event_id.strip()
        if text.isascii() and text.isdigit() and int(text) <= MAX_EVENT_ID:
            return int(text)
    return after


def _keepalive() -> ServerSentEvent:
    return ServerSentEvent(comment="keep-alive", sep=SEPARATOR)


async def _as_bytes(chunks: AsyncIterable[str]) -> AsyncIterator[bytes]:
    # Bytes go to the socket as they are; a str would be wrapped as one more event's data.
    async for chunk in chunks:
        yield chunk.encode("utf-8")


def event_stream(chunks: AsyncIterable[str], *, keepalive_s: float = KEEPALIVE_S) -> EventSourceResponse:
    """The response for a producer of encoded chunks: kept alive, ended when the client goes."""
    return EventSourceResponse(
        _as_bytes(chunks),
        ping=keepalive_s,
        ping_message_factory=_keepalive,
        sep=SEPARATOR,
        headers={"Cache-Control": "no-store"},
    )
