"""The simulator's HTTP side: a person's whole conversation kept per identity, timestamps and SMS parts,
reset, the SMS counter, no phone number in a URL, and the same default people as `run_bot.py console`."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from bot.app import create_app
from bot.channels.segments import count_segments
from bot.config import Settings, load_settings
from bot.messages import OutgoingMessage
from bot.runtime import Runtime, build_runtime
from run_bot import cli
from storage.crypto import new_data_key
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock

PHONE = "+31687654321"
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(database_url=database_url, data_key=new_data_key(), scheduler_enabled=False)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def runtime(settings: Settings, clock: FixedClock) -> Runtime:
    return build_runtime(settings, clock=clock, run_migrations=False)


@pytest.fixture
async def http(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


async def say(http: httpx.AsyncClient, text: str, channel: str = "sms", sender: str = PHONE) -> list[Any]:
    response = await http.post(
        "/simulator/messages", json={"channel": channel, "sender": sender, "text": text}
    )
    assert response.status_code == 200, response.text
    replies: list[Any] = response.json()
    return replies


async def history(
    http: httpx.AsyncClient, channel: str = "sms", sender: str = PHONE, after: int = 0
) -> list[Any]:
    response = await http.post(
        "/simulator/history", json={"channel": channel, "sender": sender, "after": after}
    )
    assert response.status_code == 200, response.text
    entries: list[Any] = response.json()
    return entries


async def test_history_holds_both_sides_with_times_and_sms_parts(
    http: httpx.AsyncClient, clock: FixedClock
) -> None:
    replies = await say(http, "HELP")
    clock.now += timedelta(minutes=3)
    await say(http, "€" * 80)  # the euro sign takes two septets: 160 units, one part
    entries = await history(http)
    assert [e["from_person"] for e in entries][:2] == [True, False]
    assert entries[0]["text"] == "HELP" and entries[1]["text"] == replies[0]["text"]
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert datetime.fromisoformat(entries[0]["at"]) == START
    mine = [e for e in entries if e["from_person"]]
    assert datetime.fromisoformat(mine[1]["at"]) == START + timedelta(minutes=3)
    assert all(e["sms_parts"] == count_segments(e["text"]).segments for e in entries)
    assert mine[1]["sms_parts"] == 1
    assert (await history(http, after=entries[-1]["id"])) == []


async def test_what_the_bot_sent_while_the_page_was_closed_is_in_the_history(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    await say(http, "HELP")
    alert = OutgoingMessage(channel=ChannelKind.SMS, recipient=PHONE, text="Burgernet: vermist, Sanne (8)")
    await runtime.simulator.send(alert)
    call = OutgoingMessage(channel=ChannelKind.VOICE, recipient=PHONE, text="Dit is Burgernet.")
    await runtime.simulator.send(call)
    entries = await history(http)
    assert [(e["channel"], e["text"]) for e in entries[-2:]] == [
        ("sms", alert.text),
        ("voice", call.text),
    ]
    assert entries[-1]["sms_parts"] is None


async def test_whatsapp_and_telegram_entries_carry_no_sms_parts(http: httpx.AsyncClient) -> None:
    await say(http, "HELP", channel="whatsapp")
    await say(http, "HELP", channel="telegram", sender="100200300")
    entries = await history(http, "whatsapp") + await history(http, "telegram", "100200300")
    assert entries and all(e["sms_parts"] is None for e in entries)
    assert await history(http) == []  # each channel's person has a conversation of their own


async def test_an_alert_with_a_photo_shows_it_in_the_chat(http: httpx.AsyncClient, runtime: Runtime) -> None:
    await say(http, "HELP", channel="telegram", sender="100200300")
    photo = "http://127.0.0.1:8080/a/BN-4K7P/photo"
    alert = OutgoingMessage(
        channel=ChannelKind.TELEGRAM, recipient="100200300", text="Burgernet: vermist", photo_url=photo
    )
    await runtime.simulator.send(alert)
    entries = await history(http, "telegram", "100200300")
    assert (entries[-1]["text"], entries[-1]["photo_url"]) == (alert.text, photo)
    assert [e["photo_url"] for e in entries[:-1]] == [None] * (len(entries) - 1)


async def test_a_shared_contact_is_kept_as_the_person_shared_it(http: httpx.AsyncClient) -> None:
    body = {"channel": "telegram", "sender": "100200300", "text": "", "contact_phone": "+31612345678"}
    assert (await http.post("/simulator/messages", json=body)).status_code == 200
    [shared, *_] = await history(http, "telegram", "100200300")
    assert (shared["from_person"], shared["contact_phone"]) == (True, "+31612345678")


async def test_reset_forgets_one_persons_conversation(http: httpx.AsyncClient) -> None:
    await say(http, "HELP")
    await say(http, "HELP", sender="+31611111111")
    response = await http.post("/simulator/reset", json={"channel": "sms", "sender": PHONE})
    assert response.status_code == 204
    assert await history(http) == []
    assert await history(http, sender="+31611111111") != []


@pytest.mark.parametrize(
    ("text", "parts", "encoding"),
    [
        pytest.param("", 1, "GSM-7", id="empty"),
        pytest.param("a" * 160, 1, "GSM-7", id="gsm-160"),
        pytest.param("a" * 161, 2, "GSM-7", id="gsm-161"),
        pytest.param("Zag hem 🚲", 1, "UCS-2", id="emoji"),
        pytest.param("ë" * 71, 2, "UCS-2", id="ucs2-71"),
    ],
)
async def test_the_counter_counts_as_the_cost_report_does(
    http: httpx.AsyncClient, text: str, parts: int, encoding: str
) -> None:
    counted = (await http.post("/simulator/sms-parts", json={"text": text})).json()
    assert (counted["parts"], counted["encoding"]) == (parts, encoding)
    assert counted["units"] == count_segments(text).units


async def test_no_simulator_route_reads_a_phone_number_from_the_url(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    for path, operations in schema["paths"].items():
        if path.startswith("/simulator"):
            for method, operation in operations.items():
                assert method == "post", (method, path)
                assert not operation.get("parameters"), (method, path)
    # The page's former poll carried the number in its query string, which the server logs.
    response = await http.get("/simulator/messages", params={"channel": "sms", "recipient": PHONE})
    assert response.status_code == 405


def test_the_page_and_the_console_default_to_the_same_person(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Synchronous, on the wall clock: the console runs its own event loop and reads the real time.
    app = create_app(build_runtime(settings, run_migrations=False))

    async def on_page(steps: list[tuple[str, str, str]]) -> tuple[str, list[Any]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
            replies: list[Any] = []
            for text, channel, sender in steps:
                replies = await say(client, text, channel=channel, sender=sender)
            return (await client.get("/simulator")).text, replies

    page, _ = asyncio.run(on_page([]))
    found = re.search(r"const DEFAULTS = (\{.*?\});", page)
    assert found is not None
    defaults = json.loads(found.group(1))
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DATA_KEY", settings.data_key or "")
    monkeypatch.setenv("SCHEDULER_ENABLED", "false")
    monkeypatch.chdir(tmp_path)
    for channel in ("sms", "whatsapp", "telegram"):
        sender = defaults["senders"][channel]
        other = "+31612399999" if channel != "telegram" else "999888777"
        # Halfway a sign-up on the page, the console's next answer continues it: the same person.
        steps = [("AANMELDEN", channel, sender), ("AANMELDEN", channel, other), ("JA", channel, other)]
        _, [expected, *_] = asyncio.run(on_page(steps))
        result = CliRunner().invoke(cli, ["console", "--channel", channel], input="JA\n")
        assert result.exit_code == 0, result.output
        assert f"chatting as {sender} on {channel}" in result.output
        assert expected["text"].splitlines()[0][:40] in result.output
