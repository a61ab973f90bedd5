"""Outside WhatsApp's 24-hour window an update and a correction go as their own approved templates when
they are configured (else as the alert's and the closing's, as before): the real dispatcher sends
through the real Twilio channel, and the local fake Twilio API records the ContentSid it got."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from bot.alerts import AlertTexts
from bot.channels.twilio import HttpxTwilioClient, TwilioChannel
from bot.dispatch import Dispatcher, template_for
from bot.services.actions import ActionService
from storage.actions import ActionDraft
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import ActionType, DeliveryKind
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, dispatch_settings, seed_person
from tests.conftest import FixedClock
from tests.fakes.twilio_api import FakeTwilioApi

ACCOUNT_SID = "AC" + "7e" * 16
AUTH_TOKEN = "77ee" * 8
OUR_NUMBER = "+3197010254999"
ALERT, CLOSING, UPDATE, CORRECTION = "HX" + "a" * 32, "HX" + "c" * 32, "HX" + "u" * 32, "HX" + "e" * 32


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.mark.parametrize(
    ("own", "wanted"),
    [
        (
            {"whatsapp_template_update": UPDATE, "whatsapp_template_correction": CORRECTION},
            [ALERT, UPDATE, CORRECTION],
        ),
        ({}, [ALERT, ALERT, CLOSING]),
    ],
    ids=["own-templates", "fall-back"],
)
async def test_an_update_and_a_correction_outside_the_window_use_their_templates(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    book: PostcodeBook,
    texts: AlertTexts,
    fake: FakeTwilioApi,
    own: dict[str, str],
    wanted: list[str],
) -> None:
    settings = dispatch_settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        public_base_url="https://bot.example.nl",
        whatsapp_template_missing_person=ALERT,
        whatsapp_template_closing=CLOSING,
        **own,
    )
    # Never wrote to us: outside the window, so only a template may reach them.
    person = seed_person(sessions, vault, clock(), channels=(ChannelKind.WHATSAPP,), last_inbound_at=None)
    twilio = TwilioChannel(
        settings, clock, http_client=HttpxTwilioClient(base_url=settings.twilio_api_base_url, timeout=5)
    )
    dispatcher = Dispatcher(
        sessions, {ChannelKind.WHATSAPP: twilio}, clock, settings, "w", vault=vault, texts=texts
    )
    service = ActionService(sessions=sessions, clock=clock, book=book, texts=texts, settings=settings)
    action = service.create(
        ActionDraft(
            type=ActionType.MISSING_PERSON,
            headline="Vermist: jongen (8), blauwe jas",
            description="Tim is sinds 14:00 vermist rond het Volkspark.",
            instruction="Ziet u hem? Bel 112.",
            area={"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 2000}},
            expires_at=clock() + timedelta(hours=2),
        ),
        actor="test",
        created_by="api",
    )
    action_id = action.id or 0
    assert service.launch(action_id, actor="test", runs_from_launch=False) == 1
    await dispatcher.drain()
    clock.advance(minutes=5)
    service.add_update(action_id, text="Hij draagt nu een rode pet.", instruction="", actor="test")
    await dispatcher.drain()
    clock.advance(minutes=5)
    assert service.cancel(action_id, reason="Verkeerde persoon.", actor="test") == 1
    await dispatcher.drain()

    sent = [m for m in fake.messages() if m["To"] == f"whatsapp:{person.addresses[ChannelKind.WHATSAPP]}"]
    assert [m.get("ContentSid") for m in sent] == wanted
    assert all("Body" not in m for m in sent)
    variables = [json.loads(m["ContentVariables"]) for m in sent]
    assert variables[1]["1"] == action.code and variables[1]["3"] == "Hij draagt nu een rode pet."
    assert variables[2]["3"] == "Vermist: jongen (8), blauwe jas"


@pytest.mark.parametrize(
    ("kind", "configured", "fallback"),
    [
        (DeliveryKind.UPDATE, "HXupdate", "HXmissing"),
        (DeliveryKind.RELAY_UPDATE, "HXupdate", "HXmissing"),
        (DeliveryKind.CANCEL, "HXcorrection", "HXclosing"),
        (DeliveryKind.RELAY_CANCEL, "HXcorrection", "HXclosing"),
        (DeliveryKind.ALERT, "HXmissing", "HXmissing"),
        (DeliveryKind.CLOSING, "HXclosing", "HXclosing"),
    ],
    ids=lambda v: v.value if isinstance(v, DeliveryKind) else None,
)
def test_template_for_each_kind(kind: DeliveryKind, configured: str, fallback: str) -> None:
    base = {"whatsapp_template_missing_person": "HXmissing", "whatsapp_template_closing": "HXclosing"}
    own = dispatch_settings(
        **base, whatsapp_template_update="HXupdate", whatsapp_template_correction="HXcorrection"
    )
    assert template_for(own, ActionType.MISSING_PERSON, kind) == configured
    assert template_for(dispatch_settings(**base), ActionType.MISSING_PERSON, kind) == fallback


def test_a_relay_update_keeps_the_relays_own_template() -> None:
    settings = dispatch_settings(whatsapp_template_relay="HXrelay", whatsapp_template_update="HXupdate")
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.RELAY_UPDATE) == "HXrelay"
    assert template_for(settings, ActionType.ROBBERY, DeliveryKind.UPDATE) == "HXupdate"
