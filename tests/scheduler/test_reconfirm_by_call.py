"""Reconfirmation of someone who signed up by calling: the yearly question is a call, answered with a key."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.conversations import ConversationRouter
from bot.messages import IncomingMessage, Keypad, OutgoingMessage
from scheduler.jobs import JobContext
from storage.db import SessionFactory
from storage.models import Participant, ParticipantStatus, ReconfirmRequest
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.scheduler.conftest import FakeChannel, answered, reconfirm_and_send, register, rows

CALLER = "+31534812345"
ANNE = "+31612345678"


@pytest.fixture
def channel() -> FakeChannel:
    """The fake channel, on the phone too."""
    return FakeChannel(
        kinds=frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM, ChannelKind.VOICE})
    )


def open_requests(sessions: SessionFactory) -> list[ReconfirmRequest]:
    with sessions() as session:
        return list(session.exec(select(ReconfirmRequest)))


async def on_the_phone(
    router: ConversationRouter, clock: FixedClock, keys: list[str]
) -> list[OutgoingMessage]:
    """Keys pressed in calls from CALLER; the replies to the last one."""
    replies: list[OutgoingMessage] = []
    for text in keys:
        replies = await router.handle(
            IncomingMessage(channel=ChannelKind.VOICE, sender=CALLER, text=text, received_at=clock())
        )
        answered(router)
        clock.advance(seconds=20)
    return replies


@pytest.mark.parametrize(
    ("key", "status"), [("1", ParticipantStatus.ACTIVE), ("9", ParticipantStatus.UNSUBSCRIBED)]
)
async def test_the_question_is_a_call_answered_with_a_key(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
    key: str,
    status: ParticipantStatus,
) -> None:
    await on_the_phone(router, clock, ["START", "7511", "12", "1", "1"])
    clock.advance(days=366)
    result = await reconfirm_and_send(job_context)
    assert result.counts.get("asked") == 1
    [question] = channel.to(CALLER)
    assert (question.channel, question.keypad, question.language) == (ChannelKind.VOICE, Keypad.ONE_KEY, "nl")
    assert question.text.startswith("Dit is Burgernet. U bent al een jaar deelnemer.")
    assert "Druk 1 voor ja. Druk 9 om u af te melden." in question.text

    replies = await on_the_phone(router, clock, [key])
    expected = "reconfirm.stay_call" if key == "1" else "reconfirm.left_call"
    assert [r.text for r in replies] == [job_context.catalogue.render("nl", expected)]
    [participant] = rows(sessions, Participant)
    assert participant.status is status
    assert open_requests(sessions) == []


async def test_someone_with_a_text_channel_is_still_asked_by_text(
    router: ConversationRouter, clock: FixedClock, job_context: JobContext, channel: FakeChannel
) -> None:
    # Registered by SMS, alerts by call: the SMS identity is the one asked, as before.
    await register(router, clock, ANNE)
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    [question] = channel.to(ANNE)
    assert (question.channel, question.keypad) == (ChannelKind.SMS, None)


async def test_a_1_outside_a_call_is_no_answer(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    await register(router, clock, ANNE)
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    await router.handle(IncomingMessage(channel=ChannelKind.SMS, sender=ANNE, text="1", received_at=clock()))
    assert len(open_requests(sessions)) == 1
