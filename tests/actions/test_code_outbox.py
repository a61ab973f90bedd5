"""Verification codes are outbox rows: the dispatcher sends them before alerts, retries, and never late."""

from __future__ import annotations

import itertools
from datetime import timedelta

from sqlalchemy import update

from bot.alerts import AlertTexts
from bot.channels.base import RecipientOptedOut, RetryableSendError
from bot.dispatch import Dispatcher
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import ChannelIdentity, OptOut, PhoneVerification
from storage.reach import refresh_reach
from storage.targeting import Circle, select_recipients
from storage.verifications import CodeLimits, request_code
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, FakeChannel, dispatch_settings, seed_person
from tests.conftest import FixedClock

PHONE = "+31612345678"
_chats = itertools.count(1)


def queue_code(sessions: SessionFactory, vault: DataVault, clock: FixedClock, phone: str = PHONE) -> int:
    with transaction(sessions) as session:
        asker = ChannelIdentity(
            channel=ChannelKind.TELEGRAM,
            address_hash=vault.lookup_hash(f"chat-{next(_chats)}"),
            created_at=clock(),
        )
        session.add(asker)
        session.flush()
        assert asker.id is not None
        row = request_code(
            session,
            vault=vault,
            phone=phone,
            channel=ChannelKind.SMS,
            requester_id=asker.id,
            compose=lambda code: f"Burgernet-code: {code}",
            now=clock(),
            limits=CodeLimits(),
        )
        return row.id or 0


def dispatcher(
    sessions: SessionFactory, channel: FakeChannel, clock: FixedClock, vault: DataVault
) -> Dispatcher:
    texts = AlertTexts(Catalogue.load())
    return Dispatcher(
        sessions,
        dict.fromkeys(channel.kinds, channel),
        clock,
        dispatch_settings(),
        "w1",
        vault=vault,
        texts=texts,
    )


def verification(sessions: SessionFactory, row_id: int) -> PhoneVerification:
    with sessions() as session:
        row = session.get(PhoneVerification, row_id)
        assert row is not None
        return row


async def test_a_queued_code_is_sent_once_and_its_message_wiped(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    row_id = queue_code(sessions, vault, clock)
    channel = FakeChannel([ChannelKind.SMS])
    await dispatcher(sessions, channel, clock, vault).drain()
    await dispatcher(sessions, channel, clock, vault).drain()
    [sent] = channel.sent
    assert sent.recipient == PHONE and sent.text.startswith("Burgernet-code: ")
    row = verification(sessions, row_id)
    assert (row.state, row.message_enc, row.phone_enc, row.provider_id) == ("sent", None, None, "sms-1")


async def test_a_code_not_sent_before_it_expires_is_never_sent(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    row_id = queue_code(sessions, vault, clock)
    clock.advance(minutes=10)
    channel = FakeChannel([ChannelKind.SMS])
    await dispatcher(sessions, channel, clock, vault).drain()
    assert channel.attempts == []
    row = verification(sessions, row_id)
    assert (row.state, row.error, row.message_enc) == ("failed", "expired", None)


async def test_a_busy_provider_is_tried_again_later(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    row_id = queue_code(sessions, vault, clock)
    channel = FakeChannel([ChannelKind.SMS])
    channel.fail(PHONE, RetryableSendError("busy", code="503"))
    await dispatcher(sessions, channel, clock, vault).drain()
    assert channel.sent == [] and verification(sessions, row_id).state == "queued"
    clock.advance(seconds=30)
    await dispatcher(sessions, channel, clock, vault).drain()
    assert [m.recipient for m in channel.sent] == [PHONE]


async def test_a_number_the_provider_says_stopped_us_is_remembered_as_opted_out(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    row_id = queue_code(sessions, vault, clock)
    channel = FakeChannel([ChannelKind.SMS])
    channel.fail(PHONE, RecipientOptedOut("stopped", code="21610"))
    await dispatcher(sessions, channel, clock, vault).drain()
    assert verification(sessions, row_id).state == "failed"
    with sessions() as session:
        assert session.get(OptOut, vault.lookup_hash(PHONE)) is not None
    # The next code for that number is withheld: nothing more is sent to it.
    clock.advance(minutes=1)
    again = queue_code(sessions, vault, clock, PHONE)
    await dispatcher(sessions, channel, clock, vault).drain()
    assert verification(sessions, again).state == "withheld" and channel.sent == []
    assert clock() - verification(sessions, again).created_at < timedelta(minutes=2)


async def test_targeting_skips_a_number_whose_owner_never_proved_it(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    typed = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,))
    proved = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,))
    with transaction(sessions) as session:
        # As a number typed in a chat before codes existed, after the upgrade.
        session.execute(
            update(ChannelIdentity)
            .where(ChannelIdentity.id == typed.identities[ChannelKind.SMS])  # type: ignore[arg-type]
            .values(verified=False)
        )
        refresh_reach(session.connection(), participant_ids=[typed.participant_id, proved.participant_id])
    with sessions() as session:
        found = select_recipients(session, area=Circle(ENSCHEDE[0], ENSCHEDE[1], 5_000), at=clock())
    assert [r.participant_id for r in found] == [proved.participant_id]
