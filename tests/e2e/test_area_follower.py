"""An area-only follower through the running app: Telegram webhook in, an alert out at the fake Bot API.

Anna follows PC4 7511 by sharing her location, without name, address or number; an action over Enschede
reaches her; the raw database then holds her chat id (keyed hash and encrypted), the PC4 and its public
centre, and nothing else of hers: not the location she shared, not her Telegram profile name.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, select

from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runtime import Runtime
from storage.crypto import DataKeyError, DataVault, new_data_key
from tests.conftest import FixedClock
from tests.e2e.serving import served_runtime
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "e2e-webhook-secret_0123456789"
PUBLIC = "https://burgernet.example.nl"
API_TOKEN = "area-follower-token-0123456789abcdef"
ANNA = 551234567
TESTDATA = Path(__file__).parent.parent / "channels" / "testdata" / "telegram"
# Where Anna stands when she shares her location: about 100 metres from the centre of PC4 7511.
LAT, LON = 52.2206874, 6.9013412
ENSCHEDE = {"circle": {"lat": 52.2215, "lon": 6.8937, "radius_m": 3000}}
HEADLINE = "Vermist: jongen (8), blauwe jas"


def anna_says(update_id: int, *, text: str | None = None, location: bool = False) -> dict[str, Any]:
    """One of Anna's messages as Telegram sends it (from the documented payloads)."""
    name = "location.json" if location else "text.json"
    update = copy.deepcopy(json.loads((TESTDATA / name).read_text(encoding="utf-8")))
    update["update_id"] = update_id
    update["message"]["message_id"] = update_id % 100_000
    if location:
        update["message"]["location"] = {"latitude": LAT, "longitude": LON, "horizontal_accuracy": 12.5}
    else:
        update["message"]["text"] = text
    return update


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def settings(database_url: str, fake: FakeTelegramApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        api_token=API_TOKEN,
        public_base_url=PUBLIC,
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_webhook_secret=SECRET,
        privacy_statement_version="2026-1",
    )


@pytest.fixture
async def running(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with served_runtime(settings, clock, telegram_options={"per_chat_interval": 0}) as both:
        yield both


def raw_values(database_url: str) -> list[tuple[str, str, Any]]:
    """Every non-empty column value of every row, as the database holds it (no ORM, no decryption)."""
    engine = create_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as connection:
            return [
                (table.name, column, value)
                for table in meta.sorted_tables
                for row in connection.execute(select(table)).mappings()
                for column, value in row.items()
                if value is not None
            ]
    finally:
        engine.dispose()


async def until(check: Any, what: str) -> None:
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"never happened: {what}")


async def test_an_area_only_follower_gets_the_alert_and_nothing_more_is_kept(
    running: tuple[Runtime, httpx.AsyncClient],
    fake: FakeTelegramApi,
    settings: Settings,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    runtime, http = running
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for n, update in enumerate(
        [anna_says(700_001, text="/volg"), anna_says(700_002, location=True), anna_says(700_003, text="ja")]
    ):
        response = await http.post(WEBHOOK_PATH, json=update, headers=headers)
        assert response.status_code == 200
        await until(lambda n=n: len(fake.sent_texts(ANNA)) > n, f"reply {n + 1}")
    nl = runtime.catalogue
    ask, consent, followed = fake.sent_texts(ANNA)
    assert ask == nl.render("nl", "follow.ask_area")
    assert consent == nl.render("nl", "follow.consent_telegram", pc4="7511", url=PUBLIC + "/privacy")
    assert followed == nl.render("nl", "follow.followed", pc4="7511", place="Enschede")
    share = fake.calls_to("sendMessage")[0].json("reply_markup")["keyboard"]
    assert [b.get("request_location") for row in share for b in row] == [True]

    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    action = await http.post(
        "/api/v1/actions",
        headers=auth,
        json={
            "type": "missing_person",
            "headline": HEADLINE,
            "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
            "instruction": "Ziet u hem? Bel 112.",
            "area": ENSCHEDE,
            "expires_at": (runtime.clock() + timedelta(hours=2)).isoformat(),
        },
    )
    assert action.status_code in (200, 201), action.text
    launched = await http.post(f"/api/v1/actions/{action.json()['id']}/launch", headers=auth)
    assert launched.status_code == 200, launched.text
    await until(lambda: any(HEADLINE in t for t in fake.sent_texts(ANNA)), "the alert reached Anna")

    # What the database holds of Anna: her chat id, encrypted, and the area; nothing she shared else.
    vault = DataVault(settings.data_key or "")
    values = raw_values(database_url)
    opened = []
    for table, column, value in values:
        if isinstance(value, str) and value.startswith("gAAAA"):
            with contextlib.suppress(DataKeyError):
                opened.append((table, column, vault.decrypt(value)))
    assert [(t, c) for t, c, v in opened if v != str(ANNA)] == [], "only the chat id is kept encrypted"
    assert ("channel_identity", "address_enc") in [(t, c) for t, c, _ in opened]
    text = "\n".join(str(v) for _, _, v in values)
    assert str(ANNA) not in text, "the chat id is never kept in clear"
    assert "Anna" not in text, "nor her Telegram profile name"
    for digits in (f"{LAT:.5f}", f"{LON:.5f}", f"{LAT:.4f}", f"{LON:.4f}"):
        assert digits not in text, "nor the location she shared"
        assert digits not in caplog.text
    tables = {t for t, _, _ in values}
    assert "address" not in tables and "reach" not in tables
    assert [v for t, c, v in values if (t, c) == ("followed_area", "pc4")] == ["7511"]
    area = {c: v for t, c, v in values if t == "followed_area"}
    centre = runtime.book.lookup("7511")
    assert (area["pc4"], area["lat"], area["lon"]) == ("7511", centre.lat, centre.lon)
    people = [(c, v) for t, c, v in values if t == "participant"]
    assert {c for c, _ in people} <= {
        "id", "status", "language", "preferred_channel", "consent_version", "consent_at", "created_at",
        "confirmed_at", "exercises", "test",
    }  # fmt: skip
