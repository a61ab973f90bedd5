"""A delivery receipt whose apply fails (the database locked): 503, nothing recorded, the retry applied once.

The receipt's key (sid and status) is written in the transaction that applies it (the runtime's
`status_recorder`, as `serve` wires it), so a failed apply cannot leave the key behind and make
Twilio's retry look like a duplicate.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import update
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.channels.twilio_webhooks import STATUS_PATH
from storage.actions import ActionDraft, Target, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import ActionType, Delivery, ProcessedEvent
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.actions.conftest import seed_person
from tests.channels.webhooks_app import AUTH_TOKEN, NOW, PUBLIC, TELEGRAM_TOKEN, Wired, webhooks_app
from tests.fakes.telegram_api import FakeTelegramApi
from tests.faults.test_storage_faults import LOCK_WAIT_S, database_locked

SID = "SM" + "4" * 32


@dataclass
class Receipts:
    wired: Wired
    delivery_id: int


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
def telegram_api() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TELEGRAM_TOKEN) as api:
        yield api


@pytest.fixture
async def receipts(database_url: str, telegram_api: FakeTelegramApi) -> AsyncIterator[Receipts]:
    """The app as `serve` builds it, on an engine that gives up on a lock soon, and one sent SMS alert."""
    async with webhooks_app(
        database_url=database_url, telegram_api_base_url=telegram_api.base_url, lock_wait_s=LOCK_WAIT_S
    ) as wired:
        yield Receipts(wired, sent_alert(wired.runtime.sessions, wired.runtime.vault))


async def post_receipt(receipts: Receipts, status: str) -> int:
    """Twilio posts a signed receipt for the delivery; the HTTP status."""
    form = {"MessageSid": SID, "SmsSid": SID, "MessageStatus": status, "To": "+31612345678",
            "From": "+3197010254321", "AccountSid": "AC" + "7" * 32}  # fmt: skip
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + STATUS_PATH, form)
    response = await receipts.wired.post(
        STATUS_PATH,
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    return response.status_code


def state(receipts: Receipts) -> tuple[str, list[str]]:
    """The delivery's status and the receipt keys recorded."""
    with receipts.wired.runtime.sessions() as session:
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
    assert state(receipts) == (status, [key]), "applied once: the key is written with the apply"
