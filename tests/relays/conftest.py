"""Relay tests: the router with the relay flows, Telegram group messages as real updates, a drained outbox."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from telegram import Update

from bot.alerts import AlertTexts
from bot.channels.telegram_updates import incoming_from_update
from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.messages import IncomingMessage, OutgoingMessage
from bot.runtime import conversation_router
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from nlu.keywords import KeywordParser
from storage.actions import ActionDraft, Target, close_action, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import Action, ActionOutcome, ActionType
from storage.targeting import parse_area, select_recipients
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, FakeChannel, dispatch_settings
from tests.conftest import FixedClock
from tests.flows.conftest import catalogue  # noqa: F401  (fixtures)

OUR_WHATSAPP = "whatsapp:+3197010203040"
BOT_USERNAME = "BurgernetTestBot"
GROUP_CHAT = "-1001234567890"
ADMIN = "777001"
_updates = itertools.count(1000)


@pytest.fixture
def settings() -> Settings:
    """Dispatcher settings with our WhatsApp number and Telegram bot name, the flow defaults."""
    return dispatch_settings(
        twilio_whatsapp_from=OUR_WHATSAPP,
        telegram_bot_username=BOT_USERNAME,
        privacy_statement_version="2026-1",
        flow_timeout_minutes=30,
    )


@pytest.fixture
def texts(catalogue: Catalogue, settings: Settings) -> AlertTexts:  # noqa: F811
    """Alert texts with the tip links of our number and bot, as the runtime builds them."""
    return AlertTexts.from_settings(catalogue, settings)


@pytest.fixture
def router(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,  # noqa: F811
    settings: Settings,
    clock: FixedClock,
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
        tips=TipServices(
            sessions=sessions, vault=vault, settings=settings, clock=clock, catalogue=catalogue, senders={}
        ),
    )


class Chat:
    """Send messages through the router as one sender and collect each turn's replies."""

    def __init__(self, router: ConversationRouter, clock: FixedClock, replies: Dispatcher) -> None:
        self.router = router
        self.clock = clock
        # The replies leave as rows; this dispatcher sends them after each turn, apart from what a test's
        # own dispatcher sends later (alerts, closings).
        self.replies = replies

    async def say(
        self, channel: ChannelKind, sender: str, texts: Sequence[str]
    ) -> list[list[OutgoingMessage]]:
        """Each text as a message from the sender; the replies per message."""
        turns = []
        for text in texts:
            message = IncomingMessage(channel=channel, sender=sender, text=text, received_at=self.clock())
            turns.append(await self.router.handle(message))
            await self.replies.drain()
            self.clock.advance(seconds=20)
        return turns

    async def in_group(
        self,
        texts: Sequence[str],
        *,
        user: str = ADMIN,
        title: str | None = "Buurtpreventie Roombeek",
        **extra: Any,
    ) -> list[list[OutgoingMessage]]:
        """Each text as a Telegram group message from a user, parsed from a real update."""
        turns = []
        for text in texts:
            turns.append(
                await self.router.handle(group_message(text, self.clock, user=user, title=title, **extra))
            )
            await self.replies.drain()
            self.clock.advance(seconds=20)
        return turns


def group_message(
    text: str, clock: FixedClock, *, user: str = ADMIN, title: str | None = None, reply_to: int | None = None
) -> IncomingMessage:
    """A message in our Telegram test group, as the Telegram adapter turns an update into one."""
    chat: dict[str, Any] = {"id": int(GROUP_CHAT), "type": "supergroup"}
    if title is not None:
        chat["title"] = title
    message: dict[str, Any] = {
        "message_id": next(_updates),
        "date": int(clock().timestamp()),
        "chat": chat,
        "from": {"id": int(user), "is_bot": False, "first_name": "Anna"},
        "text": text,
    }
    if reply_to is not None:
        message["reply_to_message"] = {"message_id": reply_to, "date": int(clock().timestamp()), "chat": chat}
    update = Update.de_json({"update_id": next(_updates), "message": message}, None)
    incoming = incoming_from_update(update, received_at=clock())
    assert incoming is not None
    return incoming


@pytest.fixture
def chat(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
) -> Chat:
    """A chat helper on the relay router; the replies go to the phones (a fake) after each turn."""
    phones = FakeChannel(list(ChannelKind))
    replies = Dispatcher(
        sessions, dict.fromkeys(ChannelKind, phones), clock, settings, vault=vault, texts=texts
    )
    return Chat(router, clock, replies)


def texts_of(turn: Sequence[OutgoingMessage]) -> list[str]:
    """The texts of one turn's replies."""
    return [r.text for r in turn]


def launch(
    sessions: SessionFactory,
    clock: FixedClock,
    *,
    area: dict[str, Any] | None = None,
    headline: str = "Vermist: jongen (8), blauwe jas",
) -> Action:
    """Create and launch an action (default: 3 km around the centre of Enschede), as the API does."""
    area = area or {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}}
    now = clock()
    with transaction(sessions) as session:
        draft = ActionDraft(
            type=ActionType.MISSING_PERSON,
            headline=headline,
            description="Tim is sinds 14:00 vermist rond het Volkspark.",
            instruction="Ziet u hem? Bel 112.",
            area=area,
            expires_at=now + timedelta(hours=2),
        )
        action = create_action(session, draft=draft, now=now, created_by="test")
        recipients = select_recipients(session, area=parse_area(area), at=now)
        targets = [
            Target(r.participant_id, r.first.identity_id, r.first.channel, r.language) for r in recipients
        ]
        launch_action(session, action=action, targets=targets, now=now)
        session.refresh(action)
        session.expunge(action)
    return action


def close(sessions: SessionFactory, clock: FixedClock, action_id: int) -> int:
    """Close an action as found; the number of participant closings queued."""
    with transaction(sessions) as session:
        action = session.get(Action, action_id)
        assert action is not None
        return close_action(
            session, action=action, outcome=ActionOutcome.FOUND, closing_text="Tim is gevonden.", now=clock()
        )


def dispatcher(
    sessions: SessionFactory, vault: DataVault, settings: Settings, texts: AlertTexts, clock: FixedClock
) -> tuple[Dispatcher, FakeChannel]:
    """A dispatcher whose every channel is one fake that records what it sent."""
    fake = FakeChannel(list(ChannelKind))
    senders = dict.fromkeys(ChannelKind, fake)
    return Dispatcher(sessions, senders, clock, settings, vault=vault, texts=texts), fake
