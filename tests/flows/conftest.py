"""Transcript tests: `converse(identity, ["START", "7511 AB 12", "JA"])` runs messages through the router."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import pytest
from sqlmodel import SQLModel, select

from bot.config import Settings, load_settings
from bot.conversations import ConversationRouter
from bot.messages import IncomingMessage, OutgoingMessage
from bot.runtime import conversation_router
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from nlu.keywords import KeywordParser
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import PhoneVerification
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock

SMS_PHONE = "+31612345678"
WHATSAPP_PHONE = "+31687654321"
TELEGRAM_CHAT = "424242"


@dataclass(frozen=True)
class Person:
    """Who is chatting: a channel and the sender address on it."""

    channel: ChannelKind
    sender: str


SMS = Person(ChannelKind.SMS, SMS_PHONE)
WHATSAPP = Person(ChannelKind.WHATSAPP, WHATSAPP_PHONE)
TELEGRAM = Person(ChannelKind.TELEGRAM, TELEGRAM_CHAT)


@dataclass(frozen=True)
class Contact:
    """A phone number shared with Telegram's "share my number" button (the sender's own)."""

    phone: str


@dataclass(frozen=True)
class TypedCode:
    """The verification code last queued, typed back as the phone's owner would read it from the SMS."""


T = TypeVar("T", bound=SQLModel)
Message = str | IncomingMessage | Contact | TypedCode
Converse = Callable[[Person, Sequence[Message]], Awaitable[list[list[OutgoingMessage]]]]


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The real catalogues."""
    return Catalogue.load()


@pytest.fixture
def settings(tmp_path: object) -> Settings:
    """Default settings (30-minute flow timeout, privacy statement 2026-1)."""
    return load_settings(privacy_statement_version="2026-1", flow_timeout_minutes=30)


@pytest.fixture
def router(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: Settings,
    clock: FixedClock,
) -> ConversationRouter:
    """The router as the runtime builds it (every flow), on the test's database, keyword parser."""
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


def queued_code(sessions: SessionFactory, vault: DataVault) -> str:
    """The code in the newest verification message not yet sent (what the phone would receive)."""
    with sessions() as session:
        rows = session.exec(select(PhoneVerification).order_by(PhoneVerification.id.desc()))  # type: ignore[union-attr]
        message = next(r.message_enc for r in rows if r.message_enc is not None)
    # A code spoken in a call to a landline is written digit by digit: "4, 8, 2, 1, 9, 0".
    text = re.sub(r"(?<=\d), (?=\d)", "", vault.decrypt(message))
    found = re.search(r"\b\d{6}\b", text)
    assert found is not None
    return found.group()


@pytest.fixture
def converse(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, vault: DataVault
) -> Converse:
    """Send messages one by one as a person; the replies to each, in order."""

    async def run(person: Person, messages: Sequence[Message]) -> list[list[OutgoingMessage]]:
        transcript = []
        for item in messages:
            if isinstance(item, IncomingMessage):
                message = item
            elif isinstance(item, Contact):
                message = incoming(person, "", clock, contact_phone=item.phone)
            elif isinstance(item, TypedCode):
                message = incoming(person, queued_code(sessions, vault), clock)
            else:
                message = incoming(person, item, clock)
            transcript.append(await router.handle(message))
            clock.advance(seconds=20)
        return transcript

    return run


def incoming(person: Person, text: str, clock: FixedClock, **extra: object) -> IncomingMessage:
    """A message from a person at the clock's time."""
    return IncomingMessage(
        channel=person.channel,
        sender=person.sender,
        text=text,
        received_at=clock(),
        **extra,  # type: ignore[arg-type]
    )


def texts(replies: Sequence[OutgoingMessage]) -> list[str]:
    """The texts of one turn's replies."""
    return [r.text for r in replies]


def last(transcript: Sequence[Sequence[OutgoingMessage]]) -> OutgoingMessage:
    """The last reply of the last turn."""
    return transcript[-1][-1]


def rows(sessions: SessionFactory, model: type[T]) -> list[T]:
    """Every row of a table, freshly read."""
    with sessions() as session:
        return list(session.exec(select(model)))


def register_steps(
    person: Person, *, name: str = "Jan", address: str = "7511 AB 12", channel: str = "SMS"
) -> list[Message]:
    """The messages of a complete registration on the person's channel."""
    phone_step: list[Message] = ["JA"] if person.channel is not ChannelKind.TELEGRAM else [Contact(SMS_PHONE)]
    return ["START", "JA", name, address, "JA", *phone_step, channel]
