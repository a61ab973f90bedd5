"""The fault tests' outbox: many SMS participants seeded in bulk, one launched action, and the settings
and channel a dispatcher (in this process or a child) sends it with."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.alerts import AlertTexts
from bot.channels.twilio import TwilioChannel
from bot.channels.twilio_http import HttpxTwilioClient
from bot.clock import Clock
from bot.config import Settings, load_settings
from bot.dispatch import Dispatcher
from bot.texts import Catalogue
from storage.actions import ActionDraft, Target, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import ActionType, ChannelIdentity, Delivery, Participant, ParticipantStatus
from storage.vocabulary import ChannelKind, DeliveryStatus

ACCOUNT_SID = "AC" + "f4" * 16
AUTH_TOKEN = "fa17" * 8
OUR_NUMBER = "+3197010254321"


@dataclass(frozen=True)
class Fanout:
    """A launched action and the phone number of each of its recipients."""

    action_id: int
    numbers: list[str]


def seed_fanout(sessions: SessionFactory, vault: DataVault, now: datetime, count: int) -> Fanout:
    """`count` active SMS participants and an action launched to all of them, in two transactions."""
    numbers = [f"+3162{n:07d}" for n in range(count)]
    with transaction(sessions) as session:
        people = [
            Participant(
                status=ParticipantStatus.ACTIVE,
                language="nl",
                preferred_channel=ChannelKind.SMS,
                created_at=now,
                confirmed_at=now,
            )
            for _ in numbers
        ]
        session.add_all(people)
        session.flush()
        identities = [
            ChannelIdentity(
                participant_id=person.id,
                channel=ChannelKind.SMS,
                address_hash=vault.lookup_hash(f"sms:{number}"),
                address_enc=vault.encrypt(number),
                language="nl",
                created_at=now,
            )
            for person, number in zip(people, numbers, strict=True)
        ]
        session.add_all(identities)
        session.flush()
        targets = [
            Target(i.participant_id, i.id or 0, ChannelKind.SMS, "nl", float(n))
            for n, i in enumerate(identities)
        ]
    with transaction(sessions) as session:
        draft = ActionDraft(
            type=ActionType.MISSING_PERSON,
            headline="Vermist: Sanne (8)",
            description="Meisje van 8 met een rode jas en een blauwe rugzak.",
            instruction="Ziet u haar? Bel 112.",
            area={"municipalities": ["0153"]},
            expires_at=now + timedelta(days=1),
        )
        action = create_action(session, draft=draft, now=now, created_by="test")
        launch_action(session, action=action, targets=targets, now=now)
        assert action.id is not None
        return Fanout(action.id, numbers)


def fault_values(database_url: str, data_key: str, provider_url: str, **overrides: Any) -> dict[str, Any]:
    """The settings of a dispatcher that sends SMS to the fake provider, rate limits off, short backoff."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_key": data_key,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_sms_from": OUR_NUMBER,
        "twilio_api_base_url": provider_url,
        "public_base_url": "https://bot.example.nl",
        "dispatch_rate_limits": False,
        "dispatch_concurrency": 16,
        "dispatch_batch_size": 200,
        "dispatch_max_attempts": 40,
        "dispatch_backoff_base_s": 0.02,
        "dispatch_backoff_max_s": 0.3,
        "dispatch_poll_interval_s": 0.05,
    }
    return values | overrides


def fault_settings(database_url: str, data_key: str, provider_url: str, **overrides: Any) -> Settings:
    """`fault_values` as Settings, for a dispatcher in this process."""
    return load_settings(**fault_values(database_url, data_key, provider_url, **overrides))


def child_env(values: dict[str, Any]) -> dict[str, str]:
    """`fault_values` as the environment of a child process (pydantic-settings reads NAME=value)."""
    return {
        name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
    }


def sms_dispatcher(
    sessions: SessionFactory, settings: Settings, clock: Clock, *, timeout_s: float = 2.0
) -> tuple[Dispatcher, TwilioChannel]:
    """The real dispatcher with the real Twilio channel as its only (SMS) lane."""
    twilio = TwilioChannel(
        settings,
        clock,
        http_client=HttpxTwilioClient(base_url=settings.twilio_api_base_url, timeout=timeout_s),
    )
    dispatcher = Dispatcher(
        sessions,
        {ChannelKind.SMS: twilio},
        clock,
        settings,
        vault=DataVault(settings.data_key or ""),
        texts=AlertTexts(Catalogue.load()),
    )
    return dispatcher, twilio


def unfinished(sessions: SessionFactory) -> int:
    """Deliveries still queued or being sent."""
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    busy = [DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value]
    with sessions() as session:
        return int(session.scalar(select(func.count()).where(d.status.in_(busy))) or 0)


def statuses(sessions: SessionFactory) -> Counter[str]:
    """How many deliveries are in each status."""
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    with sessions() as session:
        return Counter(
            {row[0]: row[1] for row in session.execute(select(d.status, func.count()).group_by(d.status))}
        )


def provider_ids(sessions: SessionFactory) -> set[str]:
    """The provider ids recorded on sent deliveries."""
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    with sessions() as session:
        return {row[0] for row in session.execute(select(d.provider_id).where(d.provider_id.is_not(None)))}
