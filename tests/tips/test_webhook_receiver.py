"""docs/webhook_receiver.py, the receiver example in the docs, checks real deliveries of the forwarder.

A tip goes out through the real forwarder to a loopback receiver; the example's `verify` accepts that
request as it came, and refuses it replayed (same id), replayed late (stale timestamp), re-signed with
another secret, or with its body, timestamp or delivery id changed.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from bot.config import Settings, load_settings
from bot.conversations import ConversationRouter
from bot.tips.wiring import TipServices
from storage.crypto import DataVault
from storage.db import SessionFactory
from tests.conftest import FixedClock
from tests.tips.conftest import forwards, launch, person, say
from tests.tips.loopback import Received, Receiver

SECRET = "whsec-receiver-0123456789"
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "webhook_receiver.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """The example as a module, loaded from the docs folder (it is not a package)."""
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and friends look the module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.stop()


@pytest.fixture
def settings(receiver: Receiver) -> Settings:
    return load_settings(
        privacy_statement_version="2026-1",
        controlroom_webhook_url=receiver.url,
        controlroom_webhook_secret=SECRET,
    )


@pytest.fixture
async def delivered(
    router: ConversationRouter, tips: TipServices, receiver: Receiver, sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> Received:  # fmt: skip
    """One tip as the forwarder POSTed it."""
    jan = person(sessions, vault, clock())
    launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag net een man met een rode jas bij de Jumbo")
    assert await tips.forwarder.drain() == 1
    [post] = receiver.posts
    return post


def test_the_example_accepts_a_real_delivery_once(
    example: ModuleType, delivered: Received, clock: FixedClock, sessions: SessionFactory
) -> None:
    seen = example.SeenDeliveries()
    now = clock().timestamp()
    delivery = example.verify(delivered.headers, delivered.body, secret=SECRET, seen=seen, now=now)
    [forward] = forwards(sessions)
    assert delivery == str(forward.id)
    assert json.loads(delivered.body)["text"].endswith("rode jas bij de Jumbo")
    # The same request again, a minute later: the id was seen.
    with pytest.raises(example.Replayed):
        example.verify(delivered.headers, delivered.body, secret=SECRET, seen=seen, now=now + 60)


@pytest.mark.parametrize("late_s", [301, 3600, -301], ids=["5-min-late", "an-hour-late", "from-the-future"])
def test_the_example_refuses_a_stale_timestamp(
    example: ModuleType, delivered: Received, clock: FixedClock, late_s: int
) -> None:
    with pytest.raises(example.Stale):
        example.verify(
            delivered.headers,
            delivered.body,
            secret=SECRET,
            seen=example.SeenDeliveries(),
            now=clock().timestamp() + late_s,
        )


def _changed(headers: dict[str, str], **values: str) -> dict[str, str]:
    return {**headers, **{k.replace("_", "-"): v for k, v in values.items()}}


@pytest.mark.parametrize(
    ("change", "secret"),
    [
        pytest.param({"x_signature_timestamp": "+1"}, SECRET, id="timestamp-moved"),
        pytest.param({"x_burgernet_delivery": "+1"}, SECRET, id="other-delivery-id"),
        pytest.param({"body": "tampered"}, SECRET, id="body-changed"),
        pytest.param({}, "another-secret", id="wrong-secret"),
        pytest.param({"x_signature_256": ""}, SECRET, id="unsigned"),
    ],
)
def test_the_example_refuses_what_the_signature_does_not_cover(
    example: ModuleType, delivered: Received, clock: FixedClock, change: dict[str, str], secret: str
) -> None:
    headers, body = dict(delivered.headers), delivered.body
    for name, how in change.items():
        if name == "body":
            body = body.replace(b"rode jas", b"blauwe jas")
        elif how == "+1":
            headers = _changed(headers, **{name: str(int(headers[name.replace("_", "-")]) + 1)})
        else:
            headers = _changed(headers, **{name: how})
    with pytest.raises(example.BadSignature):
        example.verify(headers, body, secret=secret, seen=example.SeenDeliveries(), now=clock().timestamp())


async def test_a_retry_is_signed_anew_with_the_same_delivery_id(
    example: ModuleType, router: ConversationRouter, tips: TipServices, receiver: Receiver,
    sessions: SessionFactory,
    vault: DataVault, clock: FixedClock,
) -> None:  # fmt: skip
    """After an outage longer than the tolerance the retry is fresh, and its id shows it as the same tip."""
    receiver.failing = True
    jan = person(sessions, vault, clock())
    launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag net een man met een rode jas bij de Jumbo")
    assert await tips.forwarder.drain() == 0
    receiver.failing = False
    clock.advance(minutes=10)
    assert await tips.forwarder.drain() == 1
    refused, accepted = receiver.posts
    assert refused.headers["x-burgernet-delivery"] == accepted.headers["x-burgernet-delivery"]
    seen = example.SeenDeliveries()
    now = clock().timestamp()
    with pytest.raises(example.Stale):
        example.verify(refused.headers, refused.body, secret=SECRET, seen=seen, now=now)
    example.verify(accepted.headers, accepted.body, secret=SECRET, seen=seen, now=now)
