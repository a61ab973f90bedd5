"""Tip tests: the router with the tip services on a fresh database, people who got an alert, fake channels."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.alerts import AlertTexts
from bot.channels.base import SendError, SendReceipt
from bot.config import Settings, load_settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.messages import IncomingMessage, OutgoingMessage
from bot.runtime import conversation_router
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from nlu.keywords import KeywordParser
from storage.actions import ActionDraft, Target, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import (
    Action,
    ActionType,
    ChannelIdentity,
    Delivery,
    OutboundKind,
    OutboundMessage,
    Participant,
    ParticipantStatus,
    Tip,
    TipForward,
)
from storage.participants import canonical_address
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.conftest import FixedClock
from tests.flows.conftest import catalogue  # noqa: F401  (fixtures)

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Person:
    """Someone chatting: a channel, their address on it, and their identity (and participant) ids."""

    channel: ChannelKind
    sender: str
    identity_id: int
    participant_id: int | None = None


class FakeChannel:
    """A channel that records what it sends and fails what a test asks it to."""

    def __init__(self, kinds: Sequence[ChannelKind]) -> None:
        self.kinds = frozenset(kinds)
        self.sent: list[OutgoingMessage] = []
        self.failures: list[SendError] = []

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Record the message, or raise the next scripted failure."""
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return SendReceipt(provider_id=f"out-{len(self.sent)}")


@pytest.fixture
def settings() -> Settings:
    """Default settings, no webhook."""
    return load_settings(privacy_statement_version="2026-1", flow_timeout_minutes=30)


@pytest.fixture
def channel() -> FakeChannel:
    """One fake channel for every kind."""
    return FakeChannel(list(ChannelKind))


@pytest.fixture
def tips(
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    clock: FixedClock,
    catalogue: Catalogue,  # noqa: F811
    channel: FakeChannel,
) -> TipServices:
    """The tip services as the runtime wires them."""
    return TipServices(
        sessions=sessions,
        vault=vault,
        settings=settings,
        clock=clock,
        catalogue=catalogue,
        senders=dict.fromkeys(ChannelKind, channel),
    )


@pytest.fixture
def dispatcher(
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    clock: FixedClock,
    catalogue: Catalogue,  # noqa: F811
    channel: FakeChannel,
) -> Dispatcher:
    """The one way out (replies, questions, the operators' chat), sending through the fake channel."""
    texts = AlertTexts.from_settings(catalogue, settings)
    return Dispatcher(
        sessions, dict.fromkeys(ChannelKind, channel), clock, settings, vault=vault, texts=texts
    )


@pytest.fixture
def router(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,  # noqa: F811
    settings: Settings,
    clock: FixedClock,
    tips: TipServices,
) -> ConversationRouter:
    """The router as the runtime builds it (every flow), with the keyword parser."""
    return conversation_router(
        settings,
        sessions=sessions,
        vault=vault,
        book=book,
        parser=KeywordParser(),
        catalogue=catalogue,
        clock=clock,
        tips=tips,
    )


def person(
    sessions: SessionFactory,
    vault: DataVault,
    now: datetime,
    channel: ChannelKind = ChannelKind.SMS,
    *,
    registered: bool = True,
    language: str = "nl",
    sender: str | None = None,
) -> Person:
    """A participant (or, unregistered, only a channel identity) as the router would find them."""
    number = next(_numbers)
    sender = sender or (str(700000 + number) if channel is ChannelKind.TELEGRAM else f"+3162{number:07d}")
    phone = sender if channel is not ChannelKind.TELEGRAM else f"+3162{number:07d}"
    with transaction(sessions) as session:
        participant = None
        if registered:
            participant = Participant(
                status=ParticipantStatus.ACTIVE,
                phone_enc=vault.encrypt(phone),
                phone_hash=vault.lookup_hash(phone),
                language=language,
                preferred_channel=channel,
                created_at=now,
                confirmed_at=now,
            )
            session.add(participant)
            session.flush()
        canonical = canonical_address(channel, sender)
        identity = ChannelIdentity(
            participant_id=participant.id if participant else None,
            channel=channel,
            address_hash=vault.lookup_hash(canonical),
            address_enc=vault.encrypt(canonical),
            language=language,
            created_at=now,
        )
        session.add(identity)
        session.flush()
        return Person(channel, sender, identity.id or 0, participant.id if participant else None)


def launch(
    sessions: SessionFactory,
    now: datetime,
    *recipients: Person,
    headline: str = "Vermist: Noah (8), blauwe jas",
    code_seed: int | None = None,
    received: bool = True,
) -> Action:
    """An active action whose alert reached these people (status sent, a provider id each)."""
    with transaction(sessions) as session:
        action = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline=headline,
                description="Noah is sinds 14:00 vermist.",
                instruction="Bel 112 als u hem ziet.",
                area={"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 2000}},
                expires_at=now + timedelta(hours=3),
            ),
            now=now,
            created_by="test",
            rng=random.Random(code_seed) if code_seed is not None else None,
        )
        targets = [Target(p.participant_id, p.identity_id, p.channel, "nl") for p in recipients]
        launch_action(session, action=action, targets=targets, now=now)
        if received:
            for p in recipients:
                session.execute(
                    update(Delivery)
                    .where(col(Delivery.action_id) == action.id, col(Delivery.identity_id) == p.identity_id)
                    .values(status=DeliveryStatus.SENT.value, provider_id=alert_id(action, p))
                )
        return action


def alert_id(action: Action, who: Person) -> str:
    """The provider id the alert to a person got (Telegram: per chat, so it repeats across people)."""
    if who.channel is ChannelKind.TELEGRAM:
        return str(1000 + (action.id or 0))
    return f"SM{action.id:04d}{who.identity_id:028d}"


def message(who: Person, text: str, clock: FixedClock, **extra: object) -> IncomingMessage:
    """A message from a person at the clock's time."""
    return IncomingMessage(
        channel=who.channel,
        sender=who.sender,
        text=text,
        received_at=clock(),
        **extra,  # type: ignore[arg-type]
    )


async def say(
    router: ConversationRouter, who: Person, clock: FixedClock, *items: str | IncomingMessage
) -> list[list[str]]:
    """Send messages one after the other (20 s apart); the reply texts to each."""
    out = []
    for item in items:
        incoming = item if isinstance(item, IncomingMessage) else message(who, item, clock)
        out.append([r.text for r in await router.handle(incoming)])
        clock.advance(seconds=20)
    return out


def stored_tips(sessions: SessionFactory) -> list[Tip]:
    """Every tip, in id order."""
    with sessions() as session:
        return list(session.exec(select(Tip).order_by(col(Tip.id))))


def forwards(sessions: SessionFactory) -> list[TipForward]:
    """Every forward row, in id order."""
    with sessions() as session:
        return list(session.exec(select(TipForward).order_by(col(TipForward.id))))


def outbound(sessions: SessionFactory, kind: OutboundKind) -> list[OutboundMessage]:
    """Every outbound row of a kind, in id order."""
    with sessions() as session:
        return list(
            session.exec(
                select(OutboundMessage)
                .where(col(OutboundMessage.kind) == kind)
                .order_by(col(OutboundMessage.id))
            )
        )
