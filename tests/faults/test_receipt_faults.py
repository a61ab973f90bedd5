"""A delivery receipt whose apply fails (the database locked): 503, nothing recorded, the retry applied once.

The receipt's key (sid and status) is written in the transaction that applies it (`status_recorder`,
wired with no `first_time`, as `serve` wires it), so a failed apply cannot leave the key behind
and make Twilio's retry look like a duplicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.channels.twilio_webhooks import STATUS_PATH, SignedForms, twilio_webhook_router
from bot.config import load_settings
from bot.messages import IncomingMessage
from bot.runtime import build_runtime, status_recorder
from bot.texts import Catalogue
from storage.actions import ActionDraft, Target, create_action, launch_action
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, session_factory, transaction
from storage.models import ActionType, Delivery, ProcessedEvent
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.actions.conftest import seed_person
from tests.conftest import FixedClock
from tests.fakes.twilio_api import FakeTwilioApi
from tests.faults.test_storage_faults import database_locked, impatient_engine

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://bot.example.nl"
SID = "SM" + "4" * 32
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@dataclass
class Receipts:
    http: httpx.AsyncClient
    sessions: SessionFactory
    delivery_id: int
    wakes: list[int] = field(default_factory=list)


def sent_alert(sessions: SessionFactory, vault: DataVault) -> int:
    """A launched action whose SMS alert to one person was sent (provider id SID); the delivery's id."""
    person = seed_person(sessions, vault, NOW, channels=[ChannelKind.SMS])
    with transaction(sessions) as session:
        draft = ActionDraft(
            type=ActionType.MISSING_PERSON,
            headline="Vermist: jongen van 9",
            description="Groene jas.",
            instruction="Bel 112.",
            area={"municipalities": ["0153"]},
            expires_at=NOW + timedelta(hours=2),
        )
        action = create_action(session, draft=draft, now=NOW, created_by="test")
        target = Target(person.participant_id, person.identities[ChannelKind.SMS], ChannelKind.SMS, "nl")
        launch_action(session, action=action, targets=[target], now=NOW)
        session.flush()
        (delivery,) = session.exec(select(Delivery).where(Delivery.action_id == action.id))
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)  # type: ignore[arg-type]
            .values(status=DeliveryStatus.SENT.value, provider_id=SID, sent_at=NOW)
        )
        return delivery.id or 0


@pytest.fixture
async def receipts(database_url: str, vault: DataVault) -> AsyncIterator[Receipts]:
    """The status webhook wired as the runtime wires it, on an engine that gives up on a lock soon."""
    engine = impatient_engine(database_url)
    sessions = session_factory(engine)
    clock = FixedClock(NOW)
    delivery_id = sent_alert(sessions, vault)
    wakes: list[int] = []

    async def no_messages(_message: IncomingMessage) -> None:
        return None

    web = FastAPI()
    web.include_router(
        twilio_webhook_router(
            forms=SignedForms(validator=RequestValidator(AUTH_TOKEN), public_base_url=PUBLIC),
            on_message=no_messages,
            on_status=status_recorder(sessions, clock, lambda: wakes.append(1)),
            first_time=None,
            clock=clock,
            catalogue=Catalogue.load(),
            controlroom_phone=None,
        )
    )
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url=PUBLIC) as http:
            yield Receipts(http, sessions, delivery_id, wakes)
    finally:
        engine.dispose()


async def post_receipt(receipts: Receipts, status: str) -> int:
    """Twilio posts a signed receipt for the delivery; the HTTP status."""
    form = {"MessageSid": SID, "SmsSid": SID, "MessageStatus": status, "To": "+31612345678",
            "From": "+3197010254321", "AccountSid": "AC" + "7" * 32}  # fmt: skip
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + STATUS_PATH, form)
    response = await receipts.http.post(
        STATUS_PATH,
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    return response.status_code


def state(receipts: Receipts) -> tuple[str, list[str]]:
    """The delivery's status and the receipt keys recorded."""
    with receipts.sessions() as session:
        delivery = session.get(Delivery, receipts.delivery_id)
        assert delivery is not None
        keys = sorted(e.key for e in session.exec(select(ProcessedEvent)))
    return delivery.status.value, keys


@pytest.mark.parametrize(
    ("status", "tables"),
    [
        pytest.param("delivered", ("processed_event", "delivery"), id="delivered-all-locked"),
        pytest.param("undelivered", ("processed_event", "delivery"), id="undelivered-all-locked"),
        # PostgreSQL only: the key could be written, the delivery cannot: neither may be kept.
        pytest.param("delivered", ("delivery",), id="delivered-delivery-locked"),
    ],
)
async def test_a_receipt_that_failed_to_apply_is_applied_on_the_retry_once(
    receipts: Receipts, database_url: str, status: str, tables: tuple[str, ...]
) -> None:
    if database_url.startswith("sqlite") and tables != ("processed_event", "delivery"):
        pytest.skip("SQLite locks the whole file; the one-table lock is a PostgreSQL case")
    with database_locked(database_url, tables):
        assert await post_receipt(receipts, status) == 503
    assert state(receipts) == ("sent", []), "nothing of the failed apply is kept"
    assert await post_receipt(receipts, status) == 200
    key = f"twilio-status:{SID}:{status}"
    assert state(receipts) == (status, [key])
    assert await post_receipt(receipts, status) == 200  # a late duplicate of the same receipt
    assert state(receipts) == (status, [key])
    assert receipts.wakes == [1], "applied once"


async def test_the_runtime_records_each_receipt_once_with_its_apply(database_url: str) -> None:
    # `build_runtime` as `serve` wires it: the Twilio status webhook, the runtime's status recorder.
    key = new_data_key()
    with FakeTwilioApi("AC" + "7" * 32, AUTH_TOKEN) as fake:
        settings = load_settings(
            database_url=database_url,
            data_key=key,
            public_base_url=PUBLIC,
            twilio_account_sid="AC" + "7" * 32,
            twilio_auth_token=AUTH_TOKEN,
            twilio_sms_from="+3197010254321",
            twilio_api_base_url=fake.base_url,
            scheduler_enabled=False,
        )
        runtime = build_runtime(settings, clock=FixedClock(NOW), run_migrations=False)
        try:
            delivery_id = sent_alert(runtime.sessions, DataVault(key))
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(runtime)), base_url=PUBLIC
            ) as http:
                receipts = Receipts(http, runtime.sessions, delivery_id)
                for _ in range(3):  # Twilio may post the same receipt more than once
                    assert await post_receipt(receipts, "delivered") == 200
                assert state(receipts) == ("delivered", [f"twilio-status:{SID}:delivered"])
        finally:
            runtime.engine.dispose()
