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


async def test_operators_telegram_chat_gets_each_tip_in_order_and_retries(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, catalogue: Catalogue, book: PostcodeBook
) -> None:
    from bot.channels.base import RetryableSendError
    from nlu.keywords import KeywordParser
    from storage.vocabulary import ChannelKind
    from tests.tips.conftest import FakeChannel

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
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(
        router, jan, clock, "Ik zag om 15:10 een man met een rode jas bij de Jumbo", "kenteken 12-ABC-3"
    )
    telegram.failures.append(RetryableSendError("429", code="429"))
    assert await services.forwarder.drain() == 0
    clock.advance(seconds=2)
    assert await services.forwarder.drain() == 2
    first, second = telegram.sent
    assert {first.recipient, second.recipient} == {"-100777"}
    assert first.text.startswith(catalogue.render(
        "nl", "tip.chat", id=1, code=action.code, channel="sms", reporter=stored_tips(sessions)[0].reporter,
        text="Ik zag om 15:10 een man met een rode jas bij de Jumbo",
    ))  # fmt: skip
    assert "Waar: Jumbo" in first.text and "Wanneer: 15:10 20-11" in first.text
    assert "Kenteken: 12-ABC-3" in second.text
    assert [f.chat_state for f in forwards(sessions)] == ["done", "done"]
    assert [f.webhook_state for f in forwards(sessions)] == ["skipped", "skipped"]
