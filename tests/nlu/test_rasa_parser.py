"""RasaParser against a fake Rasa on loopback (conversion, fallbacks) and, marked `rasa`, the real one."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from nlu.rasa import RasaParser, RasaResponseError, result_from_rasa
from nlu.types import Entity, Intent, ParseResult

ROOT = Path(__file__).resolve().parents[2]

# A real answer of Rasa 3.6.21 (DIET + RegexEntityExtractor), trimmed to what we read.
RASA_ANSWER: dict[str, Any] = {
    "text": "ik zag hem net richting centrum lopen, kenteken 12-ABC-3",
    "intent": {"name": "give_tip", "confidence": 0.97, "id": 123},
    "entities": [
        {
            "entity": "direction",
            "start": 16,
            "end": 31,
            "confidence_entity": 0.91,
            "value": "richting centrum",
            "extractor": "DIETClassifier",
            "processors": [],
        },
        {"entity": "plate", "start": 48, "end": 56, "value": "12-ABC-3", "extractor": "RegexEntityExtractor"},
    ],
    "intent_ranking": [
        {"name": "give_tip", "confidence": 0.97, "id": 123},
        {"name": "help", "confidence": 0.02, "id": 456},
    ],
    "response_selector": {},
}

FALLBACK_INTENT = Intent("from_fallback", 1.0)


class FallbackParser:
    """Answers every text with one fixed intent and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def parse(self, text: str) -> ParseResult:
        """The fixed result."""
        self.calls += 1
        return ParseResult(text=text, intent=FALLBACK_INTENT)


@dataclass
class FakeRasa:
    """What the fake server answers next, and what it was asked."""

    status: int = 200
    body: Any = field(default_factory=lambda: RASA_ANSWER)
    delay_s: float = 0.0
    received: list[Any] = field(default_factory=list)

    async def model_parse(self, request: Request) -> Response:
        """Starlette endpoint for `POST /model/parse`."""
        self.received.append(await request.json())
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if isinstance(self.body, str):
            return PlainTextResponse(self.body, status_code=self.status)
        return JSONResponse(self.body, status_code=self.status)


class Clock:
    """A monotonic clock that only moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def fake_rasa_server() -> Iterator[tuple[list[FakeRasa], str]]:
    """A fake Rasa on 127.0.0.1 (free port) in a thread; the list holds the behaviour of the current test."""
    current = [FakeRasa()]

    async def model_parse(request: Request) -> Response:
        return await current[0].model_parse(request)

    app = Starlette(routes=[Route("/model/parse", model_parse, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the fake Rasa did not start"
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield current, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


@pytest.fixture
def fake_rasa(fake_rasa_server: tuple[list[FakeRasa], str]) -> tuple[FakeRasa, str]:
    """A fresh fake behaviour (answers RASA_ANSWER) on the module's fake server."""
    current, url = fake_rasa_server
    current[0] = FakeRasa()
    return current[0], url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_converts_rasa_answer(fake_rasa: tuple[FakeRasa, str]) -> None:
    fake, url = fake_rasa
    fallback = FallbackParser()
    async with RasaParser(url, fallback=fallback) as parser:
        result = await parser.parse(RASA_ANSWER["text"])
    assert fake.received == [{"text": RASA_ANSWER["text"]}]
    assert fallback.calls == 0
    assert result == ParseResult(
        text=RASA_ANSWER["text"],
        intent=Intent("give_tip", 0.97),
        entities=(
            Entity("direction", "richting centrum", 16, 31, 0.91, "DIETClassifier"),
            Entity("plate", "12-ABC-3", 48, 56, 1.0, "RegexEntityExtractor"),
        ),
        intent_ranking=(Intent("give_tip", 0.97), Intent("help", 0.02)),
    )


async def test_round_trip_through_to_rasa(fake_rasa: tuple[FakeRasa, str]) -> None:
    fake, url = fake_rasa
    fake.body = ParseResult(
        text="hoi",
        intent=Intent("greet", 0.8),
        entities=(Entity("place", "station", 0, 3, 0.5, "DIETClassifier"),),
        intent_ranking=(Intent("greet", 0.8),),
    ).to_rasa()
    async with RasaParser(url + "/", fallback=FallbackParser()) as parser:
        result = await parser.parse("hoi")
    assert result.to_rasa() == fake.body


@pytest.mark.parametrize(
    ("status", "body"),
    [
        pytest.param(500, {"error": "boom"}, id="500"),
        pytest.param(503, "Service Unavailable", id="503-text"),
        pytest.param(409, {"message": "No agent loaded."}, id="409-no-model"),
        pytest.param(200, "not json", id="200-not-json"),
        pytest.param(200, [1, 2], id="200-not-object"),
        pytest.param(200, {"intent": {"name": "x"}, "entities": [{"value": "no span"}]}, id="200-bad-entity"),
    ],
)
async def test_bad_answer_falls_back(fake_rasa: tuple[FakeRasa, str], status: int, body: Any) -> None:
    fake, url = fake_rasa
    fake.status, fake.body = status, body
    fallback = FallbackParser()
    async with RasaParser(url, fallback=fallback) as parser:
        result = await parser.parse("hallo")
    assert len(fake.received) == 1
    assert fallback.calls == 1
    assert result.intent == FALLBACK_INTENT


async def test_timeout_falls_back(fake_rasa: tuple[FakeRasa, str]) -> None:
    fake, url = fake_rasa
    fake.delay_s = 0.3
    fallback = FallbackParser()
    async with RasaParser(url, fallback=fallback, timeout_s=0.05) as parser:
        result = await parser.parse("hallo")
    assert result.intent == FALLBACK_INTENT
    assert fallback.calls == 1


async def test_connection_refused_falls_back() -> None:
    fallback = FallbackParser()
    async with RasaParser(f"http://127.0.0.1:{_free_port()}", fallback=fallback) as parser:
        result = await parser.parse("hallo")
    assert result.intent == FALLBACK_INTENT
    assert fallback.calls == 1


async def test_rests_after_failure_then_tries_again(fake_rasa: tuple[FakeRasa, str]) -> None:
    fake, url = fake_rasa
    fake.status, fake.body = 500, {"error": "boom"}
    clock = Clock()
    fallback = FallbackParser()
    async with RasaParser(url, fallback=fallback, retry_after_s=5.0, monotonic=clock) as parser:
        await parser.parse("een")
        clock.now += 4.9
        await parser.parse("twee")
        asked_while_resting = len(fake.received)
        fake.status, fake.body = 200, RASA_ANSWER
        clock.now += 0.2
        result = await parser.parse("drie")
    assert asked_while_resting == 1
    assert fallback.calls == 2
    assert len(fake.received) == 2
    assert result.intent.name == "give_tip"


async def test_injected_client_is_used_and_left_open(fake_rasa: tuple[FakeRasa, str]) -> None:
    _, url = fake_rasa
    async with httpx.AsyncClient(headers={"X-Test": "1"}) as client:
        async with RasaParser(url, fallback=FallbackParser(), client=client) as parser:
            result = await parser.parse("hallo")
        assert not client.is_closed
    assert result.intent.name == "give_tip"


@pytest.mark.parametrize(
    ("payload", "intent"),
    [
        pytest.param(
            {"intent": {"name": None, "confidence": 0.0}, "entities": []}, "nlu_fallback", id="null"
        ),
        pytest.param({"entities": []}, "nlu_fallback", id="missing"),
        pytest.param({"intent": {"name": "deny", "confidence": 0.6}}, "deny", id="no-entities"),
    ],
)
def test_intent_without_name(payload: dict[str, Any], intent: str) -> None:
    assert result_from_rasa("", payload).intent.name == intent


def test_foreign_shape_raises() -> None:
    with pytest.raises(RasaResponseError):
        result_from_rasa("x", {"intent": {"name": "x", "confidence": "high"}})


# --- the real Rasa server from .rasa-venv (scripts/rasa_venv.sh) -------------------------------------

REAL_CASES = [
    pytest.param("ik wil me graag aanmelden voor burgernet", "register", {}, id="register"),
    pytest.param("ik wil me afmelden, stuur geen berichten meer", "unsubscribe", {}, id="unsubscribe"),
    pytest.param("ik ben verhuisd naar een ander adres", "change_address", {}, id="change-address"),
    pytest.param("goedemorgen", "greet", {}, id="greet"),
    pytest.param(
        "een vrouw met een blauwe jas liep net richting centrum",
        "give_tip",
        {"direction": "richting centrum", "description": "blauwe jas"},
        id="tip-direction",
    ),
    pytest.param(
        "de grijze auto met kenteken 12-ABC-3 reed naar het noorden",
        "give_tip",
        {"vehicle_plate": "12-ABC-3", "description": "grijze auto", "direction": "naar het noorden"},
        id="tip-plate",
    ),
    pytest.param(
        "I saw a man in a red jacket near the station 10 minutes ago",
        "give_tip",
        {"place": "station", "time_seen": "10 minutes ago"},
        id="tip-english",
    ),
]


@pytest.fixture(scope="module")
def real_rasa_url() -> Iterator[str]:
    """A real Rasa server on loopback, trained on nlu/ (cached in nlu/models), for this module."""
    from nlu import rasa_server

    venv = rasa_server.RasaPaths.default(ROOT)
    if not venv.ready():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Rasa venv missing at {venv.venv}: run scripts/rasa_venv.sh (make rasa-venv)")
        pytest.skip("Rasa venv missing: run scripts/rasa_venv.sh")
    model = rasa_server.train(venv)
    port = _free_port()
    with rasa_server.serve(venv, model, port=port) as rasa:
        yield rasa.url


class _NeverFallback:
    async def parse(self, text: str) -> ParseResult:
        raise AssertionError("the real Rasa server did not answer")


@pytest.mark.rasa
@pytest.mark.slow
@pytest.mark.parametrize(("text", "intent", "entities"), REAL_CASES)
async def test_real_rasa(real_rasa_url: str, text: str, intent: str, entities: dict[str, str]) -> None:
    async with RasaParser(real_rasa_url, fallback=_NeverFallback(), timeout_s=10.0) as parser:
        result = await parser.parse(text)
    assert result.intent.name == intent
    found = {(e.entity, e.value) for e in result.entities}
    assert set(entities.items()) <= found
    for e in result.entities:
        assert 0 <= e.start < e.end <= len(text)


async def test_factory_uses_rasa_with_builtin_fallback() -> None:
    from nlu.factory import make_parser

    down = make_parser(rasa_url=f"http://127.0.0.1:{_free_port()}")
    builtin = make_parser(rasa_url=None)
    assert isinstance(down, RasaParser)
    assert not isinstance(builtin, RasaParser)
    try:
        assert await down.parse("ik wil me afmelden") == await builtin.parse("ik wil me afmelden")
    finally:
        await down.aclose()
