"""The action JSON shows what the relays did: groups and estimated members reached, relay messages apart."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.config import Settings
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.vocabulary import ChannelKind
from tests.actions.conftest import seed_person
from tests.conftest import FixedClock
from tests.flows.conftest import WHATSAPP_PHONE
from tests.relays.conftest import Chat, dispatcher, launch

TOKEN = "test-token-123"


async def test_get_action_shows_the_relays_reached(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
) -> None:
    await chat.say(
        ChannelKind.WHATSAPP,
        WHATSAPP_PHONE,
        ["BUURTAPP", "JA", "Buurtpreventie Roombeek", "WhatsApp", "7511", "80", "JA"],
    )
    await chat.in_group(["/buurtapp", "ja", "7511", "45"])
    seed_person(sessions, vault, clock())
    action = launch(sessions, clock)
    outbox, _ = dispatcher(sessions, vault, settings, texts, clock)
    await outbox.drain()
    app = FastAPI()
    app.include_router(
        actions_router(
            sessions=sessions,
            settings=settings.model_copy(update={"api_token": TOKEN}),
            clock=clock,
            book=book,
            texts=texts,
            on_queued=lambda: None,
        )
    )
    with TestClient(app) as client:
        response = client.get(f"/api/v1/actions/{action.id}", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    body = response.json()
    assert body["relays"] == {
        "relays": 2,
        "estimated_members": 125,
        "by_status": {"sent": 2},
        "closings": 0,
        "tips": 0,
    }
    assert body["deliveries"]["alert"]["total"] == 1
    assert body["deliveries"]["relay_alert"]["by_channel"] == {
        "telegram": {"sent": 1},
        "whatsapp": {"sent": 1},
    }
