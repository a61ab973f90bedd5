"""bot/sse.py: where a stream resumes, the encoding both streams share, keep-alive and hang-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot import sse


@pytest.mark.parametrize(
    ("last_event_id", "after", "start"),
    [
        pytest.param("5", None, 5, id="header"),
        pytest.param(" 7 ", 3, 7, id="header-wins-over-after"),
        pytest.param(None, 3, 3, id="after"),
        pytest.param(None, None, None, id="from-now"),
        pytest.param("abc", 0, 0, id="not-a-number"),
        pytest.param("²", 4, 4, id="unicode-digit"),
        pytest.param("-1", 2, 2, id="negative"),
        pytest.param(str(2**31), 2, 2, id="beyond-32-bit-ids"),
    ],
)
def test_resume_after(last_event_id: str | None, after: int | None, start: int | None) -> None:
    assert sse.resume_after(last_event_id, after) == start


def test_an_event_with_and_without_an_id() -> None:
    assert sse.event("tip", {"text": "café"}, event_id=3) == 'id: 3\nevent: tip\ndata: {"text":"café"}\n\n'
    assert sse.event("tip_updated", {}) == "event: tip_updated\ndata: {}\n\n"
    assert sse.opening() == f"retry: {sse.RETRY_MS}\n\n"


async def test_a_quiet_stream_is_kept_alive_and_ends_when_the_client_hangs_up() -> None:
    ended = asyncio.Event()

    async def quiet() -> AsyncIterator[str]:
        try:
            yield sse.opening()
            await asyncio.sleep(3600)
            yield sse.event("never", {})
        finally:
            ended.set()

    response = sse.event_stream(quiet(), keepalive_s=0.05)
    chunks: list[bytes] = []
    hung_up = asyncio.Event()

    async def receive() -> dict[str, object]:
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))  # type: ignore[arg-type]
            if b"".join(chunks).count(b": keep-alive\n\n") >= 2:
                hung_up.set()

    scope = {"type": "http", "method": "GET", "headers": [], "path": "/"}
    await asyncio.wait_for(response(scope, receive, send), timeout=10)  # type: ignore[arg-type]
    body = b"".join(chunks).decode()
    assert body.startswith("retry: 2000\n\n")
    assert body.count(": keep-alive\n\n") >= 2
    assert ended.is_set(), "the producer was closed when the client went"
    assert dict(response.headers)["cache-control"] == "no-store"
