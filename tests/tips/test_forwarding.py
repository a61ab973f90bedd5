"""The control-room webhook: signed JSON in the ARCHITECTURE.md tip shape, in order, retried until 2xx.

The receiver is a real HTTP server on loopback; the forwarder's clock is the test's, so backoff is
tested by moving the clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest

from bot.config import Settings, load_settings
from bot.conversations import ConversationRouter
from bot.texts import Catalogue
from bot.tips.forwarder import signature, webhook_body
from bot.tips.wiring import TipServices
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from tests.conftest import FixedClock
from tests.tips.conftest import forwards, launch, person, say, stored_tips
from tests.tips.loopback import Receiver

SECRET = "whsec-test-0123456789"
TIP_FIELDS = {
    "id", "action_id", "action_code", "channel", "received_at", "text", "intent", "seen_at", "location",
    "direction", "description", "vehicle_plate", "media", "reporter",
}  # fmt: skip


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver that is not listening yet (a test starts it)."""
    found = Receiver()
    yield found
    await found.stop()


@pytest.fixture
def settings(receiver: Receiver) -> Settings:
    """Settings with the webhook pointing at the loopback receiver."""
    return load_settings(
        privacy_statement_version="2026-1",
        controlroom_webhook_url=receiver.url,
        controlroom_webhook_secret=SECRET,
    )


def test_signature_is_the_hex_hmac_sha256_of_timestamp_delivery_and_body() -> None:
    body = webhook_body({"id": 1, "text": "rode jas"})
    expected = hmac.new(SECRET.encode(), b"1795185000.42." + body, hashlib.sha256).hexdigest()
    assert signature(body, SECRET, timestamp=1795185000, delivery="42") == f"sha256={expected}"
    assert signature(body, SECRET, timestamp=1795185001, delivery="42") != f"sha256={expected}"
    assert signature(body, SECRET, timestamp=1795185000, delivery="43") != f"sha256={expected}"


async def test_a_tip_is_posted_signed_in_the_tip_shape(
    router: ConversationRouter, tips: TipServices, receiver: Receiver, sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:  # fmt: skip
    await receiver.start()
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag om 15:10 een man met een rode jas bij de Jumbo, kenteken 12-ABC-3")
    assert await tips.forwarder.drain() == 1
    [post] = receiver.posts
    assert post.headers["x-signature-256"] == post.expected_signature(SECRET)
    assert post.headers["x-signature-timestamp"] == str(int(clock().timestamp()))
    assert post.headers["content-type"] == "application/json"
    tip = json.loads(post.body)
    assert set(tip) >= TIP_FIELDS
    assert (tip["action_id"], tip["action_code"], tip["channel"]) == (action.id, action.code, "sms")
    assert tip["vehicle_plate"] == "12-ABC-3" and tip["location"]["text"] == "Jumbo"
    assert "phone" not in json.dumps(tip) and jan.sender not in post.body.decode()
    [forward] = forwards(sessions)
    assert post.headers["x-burgernet-delivery"] == str(forward.id)
    assert forward.webhook_state == "done" and forward.webhook_attempts == 1


@pytest.mark.parametrize("outage", ["not_listening", "answers_503"])
async def test_receiver_down_then_back_nothing_lost_nothing_doubled(
    router: ConversationRouter, tips: TipServices, receiver: Receiver, sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock, outage: str,
) -> None:  # fmt: skip
    if outage == "answers_503":
        receiver.failing = True
        await receiver.start()
    people = [person(sessions, vault, clock()) for _ in range(3)]
    launch(sessions, clock(), *people)
    for who in people:
        await say(router, who, clock, f"Ik zag hem om 15:1{who.identity_id} bij de Jumbo")
    await say(router, people[0], clock, "Hij had een rode rugzak")  # extends the first tip
    written = [f.id for f in forwards(sessions)]
    assert len(written) == 4

    assert await tips.forwarder.drain() == 0  # the head fails; the rest waits behind it, in order
    clock.advance(seconds=0.5)
    assert await tips.forwarder.drain() == 0  # not due yet: no new attempt before the backoff
    clock.advance(seconds=1)
    assert await tips.forwarder.drain() == 0  # tried again, still down
    head = forwards(sessions)[0]
    assert head.webhook_attempts == 2 and head.webhook_error
    assert [f.webhook_state for f in forwards(sessions)] == ["pending"] * 4

    receiver.failing = False
    if outage == "not_listening":
        await receiver.start()
    clock.advance(seconds=2)
    assert await tips.forwarder.drain() == 4
    assert await tips.forwarder.drain() == 0
    delivered = [int(p.headers["x-burgernet-delivery"]) for p in receiver.acknowledged()]
    assert delivered == written  # every version once, in the order written
    assert [f.webhook_state for f in forwards(sessions)] == ["done"] * 4
    bodies = [json.loads(p.body) for p in receiver.acknowledged()]
    assert bodies[-1]["text"].endswith("Hij had een rode rugzak")


async def test_the_running_worker_posts_as_soon_as_a_tip_is_stored(
    router: ConversationRouter, tips: TipServices, receiver: Receiver, sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:  # fmt: skip
    await receiver.start()
    await tips.start()
    try:
        jan = person(sessions, vault, clock())
        launch(sessions, clock(), jan)
        await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
        await asyncio.wait_for(receiver.wait_for(1), 10)
    finally:
        await tips.stop()
    assert len(receiver.posts) == 1


async def test_operators_telegram_chat_gets_each_tip_version_and_retries(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, catalogue: Catalogue, book: PostcodeBook
) -> None:
    from bot.alerts import AlertTexts
    from bot.channels.base import RetryableSendError
    from bot.dispatch import Dispatcher
    from nlu.keywords import KeywordParser
    from storage.models import OutboundKind
    from storage.vocabulary import ChannelKind
    from tests.tips.conftest import FakeChannel, outbound

    telegram = FakeChannel([ChannelKind.TELEGRAM])
    settings = load_settings(privacy_statement_version="2026-1", controlroom_telegram_chat_id="-100777")
    services = TipServices(
        sessions=sessions, vault=vault, settings=settings, clock=clock, catalogue=catalogue,
        senders={ChannelKind.TELEGRAM: telegram},
    )  # fmt: skip
    router = ConversationRouter(
        sessions=sessions, vault=vault, book=book, parser=KeywordParser(), catalogue=catalogue,
        settings=settings, clock=clock, flows=services.flows,
    )  # fmt: skip
    # Only Telegram is carried: the SMS tipster's thanks wait, the operators' chat goes out.
    dispatcher = Dispatcher(
        sessions, {ChannelKind.TELEGRAM: telegram}, clock, settings, vault=vault,
        texts=AlertTexts.from_settings(catalogue, settings),
    )  # fmt: skip
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag om 15:10 een man met een rode jas bij de Jumbo")
    assert len(outbound(sessions, OutboundKind.OPERATOR_CHAT)) == 1  # one tip, one chat message
    await say(router, jan, clock, "kenteken 12-ABC-3")
    rows = outbound(sessions, OutboundKind.OPERATOR_CHAT)
    assert len(rows) == 2 and {r.identity_id for r in rows} == {None}  # the chat is nobody's to STOP
    telegram.failures.append(RetryableSendError("429", code="429"))
    assert (await dispatcher.drain()).messages == 1  # the first waits its backoff; the second goes on
    clock.advance(seconds=10)
    assert (await dispatcher.drain()).messages == 1
    second, first = telegram.sent
    assert {first.recipient, second.recipient} == {"-100777"}
    assert first.text.startswith(catalogue.render(
        "nl", "tip.chat", id=1, code=action.code, channel="sms", reporter=stored_tips(sessions)[0].reporter,
        text="Ik zag om 15:10 een man met een rode jas bij de Jumbo",
    ))  # fmt: skip
    assert "Waar: Jumbo" in first.text and "Wanneer: 15:10 20-11" in first.text
    assert "Kenteken: 12-ABC-3" in second.text
    assert [f.webhook_state for f in forwards(sessions)] == ["skipped", "skipped"]
    assert [r.status.value for r in outbound(sessions, OutboundKind.OPERATOR_CHAT)] == ["sent", "sent"]


async def test_without_telegram_the_operators_chat_is_not_written_and_said_once(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, catalogue: Catalogue, book: PostcodeBook,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from nlu.keywords import KeywordParser
    from storage.models import OutboundKind
    from storage.vocabulary import ChannelKind
    from tests.tips.conftest import FakeChannel, outbound

    settings = load_settings(privacy_statement_version="2026-1", controlroom_telegram_chat_id="-100777")
    with caplog.at_level("WARNING"):
        services = TipServices(
            sessions=sessions, vault=vault, settings=settings, clock=clock, catalogue=catalogue,
            senders={ChannelKind.SMS: FakeChannel([ChannelKind.SMS])},
        )  # fmt: skip
    router = ConversationRouter(
        sessions=sessions, vault=vault, book=book, parser=KeywordParser(), catalogue=catalogue,
        settings=settings, clock=clock, flows=services.flows,
    )  # fmt: skip
    jan = person(sessions, vault, clock())
    launch(sessions, clock(), jan)
    with caplog.at_level("WARNING"):
        await say(router, jan, clock, "Ik zag om 15:10 een man bij de Jumbo", "kenteken 12-ABC-3")
    assert [r.message for r in caplog.records if "CONTROLROOM_TELEGRAM_CHAT_ID" in r.message] == [
        "CONTROLROOM_TELEGRAM_CHAT_ID is set but Telegram is not configured: no operators' chat"
    ]
    assert len(stored_tips(sessions)) == 1 and outbound(sessions, OutboundKind.OPERATOR_CHAT) == []
