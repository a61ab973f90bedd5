"""Registration on Telegram through the running app: polling and webhook in, replies at the fake Bot API."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot.app import create_app
from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from storage.crypto import DataVault, new_data_key
from storage.models import ChannelIdentity, ConversationState, Participant, ParticipantStatus, ProcessedEvent
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled, served_runtime
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "e2e-webhook-secret_0123456789"
PUBLIC = "https://burgernet.example.nl"
ANNA = 551234567
PHONE = "+31612345678"
TESTDATA = Path(__file__).parent.parent / "channels" / "testdata" / "telegram"
NO_PACING = {"per_chat_interval": 0}
ANSWERS = ["/start", "ja", "overslaan", "7511ab 12-a", "ja", "<contact>", "Telegram"]


def updates(first_id: int) -> list[dict[str, Any]]:
    """Anna's answers as Telegram updates; the phone number arrives as her own shared contact."""
    text = json.loads((TESTDATA / "text.json").read_text(encoding="utf-8"))
    contact = json.loads((TESTDATA / "contact_own.json").read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = []
    for n, answer in enumerate(ANSWERS):
        if answer == "<contact>":
            update = copy.deepcopy(contact)
        else:
            update = copy.deepcopy(text)
            update["message"]["text"] = answer
        update["update_id"] = first_id + n
        update["message"]["message_id"] = 2000 + n
        found.append(update)
    return found


@dataclass
class Running:
    """The app serving on loopback with the Telegram channel wired in."""

    runtime: Runtime
    http: httpx.AsyncClient


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, max_poll_s=0.5) as api:
        yield api


def make_settings(database_url: str, fake: FakeTelegramApi, secret: str | None) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_webhook_secret=secret,
        privacy_statement_version="2026-1",
    )


@pytest.fixture(params=["polling", "webhook"])
def settings(request: pytest.FixtureRequest, database_url: str, fake: FakeTelegramApi) -> Settings:
    return make_settings(database_url, fake, SECRET if request.param == "webhook" else None)


@pytest.fixture
async def running(settings: Settings, clock: FixedClock) -> AsyncIterator[Running]:
    async with served_runtime(settings, clock, telegram_options=NO_PACING) as (runtime, http):
        yield Running(runtime=runtime, http=http)


def rows(running: Running, model: type[Any]) -> list[Any]:
    with running.runtime.sessions() as session:
        return list(session.exec(select(model)))


async def test_whole_registration(running: Running, fake: FakeTelegramApi, settings: Settings) -> None:
    sent_updates = updates(first_id=300_000_001)
    if settings.telegram_webhook_secret:
        assert fake.webhook is not None and fake.webhook["url"] == PUBLIC + WEBHOOK_PATH
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for i, update in enumerate(sent_updates):
            response = await running.http.post(WEBHOOK_PATH, json=update, headers=headers)
            assert response.status_code == 200
            if i == 2:
                # Telegram repeats an update it thinks failed: the repeat must not be answered twice.
                again = await running.http.post(WEBHOOK_PATH, json=sent_updates[1], headers=headers)
                assert again.status_code == 200
    else:
        # All at once: the replies must still come in the order of the answers.
        for update in sent_updates:
            fake.push_update(update)
        await asyncio.to_thread(fake.wait_for, "sendMessage", len(ANSWERS), 30.0)

    await outbox_settled(running.runtime.sessions)
    nl = running.runtime.catalogue
    calls = [c for c in fake.calls_to("sendMessage") if c.status == 200]
    assert len(calls) == len(ANSWERS)
    assert {int(c.params["chat_id"]) for c in calls} == {ANNA}
    assert (
        calls[0]
        .params["text"]
        .startswith(nl.render("nl", "registration.consent", version="2026-1", url=PUBLIC + "/privacy"))
    )
    ask_phone = calls[4]
    assert ask_phone.params["text"] == nl.render("nl", "registration.ask_phone")
    assert ask_phone.json("reply_markup")["keyboard"][0] == [
        {"text": "Deel mijn nummer", "request_contact": True}
    ]
    channel_choice = calls[5].json("reply_markup")["keyboard"]
    assert [b["text"] for row in channel_choice for b in row] == ["Telegram", "WhatsApp", "SMS", "Telefoon"]
    assert calls[-1].params["text"] == nl.render(
        "nl", "registration.welcome", channel="Telegram", place="Enschede"
    )

    vault = DataVault(settings.data_key or "")
    [participant] = rows(running, Participant)
    assert participant.status is ParticipantStatus.ACTIVE
    assert participant.preferred_channel is ChannelKind.TELEGRAM
    assert vault.decrypt(participant.phone_enc) == PHONE
    [identity] = rows(running, ChannelIdentity)
    assert (identity.channel, identity.participant_id, identity.opted_out) == (
        ChannelKind.TELEGRAM,
        participant.id,
        False,
    )
    assert rows(running, ConversationState) == []
    keys = {e.key for e in rows(running, ProcessedEvent)}
    assert {f"telegram:update:{u['update_id']}" for u in sent_updates} <= keys


async def test_webhook_without_the_secret_never_reaches_the_router(
    database_url: str, fake: FakeTelegramApi, clock: FixedClock
) -> None:
    runtime = build_runtime(
        make_settings(database_url, fake, SECRET),
        clock=clock,
        run_migrations=False,
        telegram_options=NO_PACING,
    )
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as http:
        update = updates(first_id=400_000_001)[0]
        wrong = await http.post(
            WEBHOOK_PATH, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"}
        )
        missing = await http.post(WEBHOOK_PATH, json=update)
    runtime.engine.dispose()
    assert (wrong.status_code, missing.status_code) == (403, 403)
    assert fake.calls_to("sendMessage") == []
    with runtime.sessions() as session:
        assert list(session.exec(select(ProcessedEvent))) == []
