"""Scheduler fixtures: the real router (to register people as they would), a fake channel, job context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel, select

from bot.alerts import AlertTexts
from bot.channels.base import SendReceipt
from bot.config import Settings, load_settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.messages import IncomingMessage, OutgoingMessage
from bot.runtime import conversation_router
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from nlu.keywords import KeywordParser
from scheduler.jobs import JobContext, JobResult, reconfirm
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import OutboundKind, OutboundMessage, Participant
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock


@dataclass
class FakeChannel:
    """Records what would have been sent, on every text channel."""

    kinds: frozenset[ChannelKind] = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM})
    sent: list[OutgoingMessage] = field(default_factory=list)

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Keep the message."""
        self.sent.append(message)
        return SendReceipt(provider_id=f"fake-{len(self.sent)}")

    def to(self, recipient: str) -> list[OutgoingMessage]:
        """What one recipient got."""
        return [m for m in self.sent if m.recipient == recipient]


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The real catalogues."""
    return Catalogue.load()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Default scheduler settings on the test's database."""
    return load_settings(database_url=database_url, reconfirm_per_minute=60)


@pytest.fixture
def channel() -> FakeChannel:
    """The fake channel."""
    return FakeChannel()


@pytest.fixture
def router(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
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


@pytest.fixture
def job_context(
    sessions: SessionFactory,
    settings: Settings,
    clock: FixedClock,
    vault: DataVault,
    catalogue: Catalogue,
    channel: FakeChannel,
    book: PostcodeBook,
) -> JobContext:
    """The jobs' context on the test's database and clock."""
    senders = dict.fromkeys(channel.kinds, channel)
    return JobContext(
        sessions=sessions,
        settings=settings,
        clock=clock,
        vault=vault,
        catalogue=catalogue,
        senders=senders,
        book=book,
    )


async def say(
    router: ConversationRouter, clock: FixedClock, phone: str, texts: Sequence[str]
) -> list[OutgoingMessage]:
    """Send texts by SMS from a phone; the replies to the last one."""
    replies: list[OutgoingMessage] = []
    for text in texts:
        replies = await router.handle(
            IncomingMessage(channel=ChannelKind.SMS, sender=phone, text=text, received_at=clock())
        )
        answered(router)
        clock.advance(seconds=20)
    return replies


def answered(router: ConversationRouter) -> None:
    """The replies queued so far count as sent: the tests' channel records only what the jobs cause."""
    with transaction(router._sessions) as session:  # noqa: SLF001 - the router's own database
        session.execute(
            sa.update(OutboundMessage)
            .where(sa.column("kind") == OutboundKind.REPLY.value, sa.column("status") == "queued")
            .values(status="sent", recipient_enc=None, message_enc=None)
        )


async def reconfirm_and_send(ctx: JobContext) -> JobResult:
    """The reconfirm job, then the dispatcher over what it queued (into the context's senders)."""
    result = await reconfirm(ctx)
    texts = AlertTexts.from_settings(ctx.catalogue, ctx.settings)
    await Dispatcher(ctx.sessions, ctx.senders, ctx.clock, ctx.settings, vault=ctx.vault, texts=texts).drain()
    return result


async def register(
    router: ConversationRouter,
    clock: FixedClock,
    phone: str,
    *,
    name: str = "Jan",
    address: str = "7511 AB 12",
) -> None:
    """A complete registration by SMS, as a citizen does it."""
    await say(router, clock, phone, ["START", "JA", name, address, "JA", "JA", "SMS"])


T = type[SQLModel]


def rows(sessions: SessionFactory, model: type[Participant]) -> list[Participant]:
    """Every participant, freshly read."""
    with sessions() as session:
        return list(session.exec(select(model).order_by(model.id)))  # type: ignore[arg-type]
