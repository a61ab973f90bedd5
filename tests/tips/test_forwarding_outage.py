"""The control-room webhook receiver down for 2 minutes while tips keep coming, then back: every tip
arrives afterwards, once, in the order written.

tests/tips/test_forwarding.py proves the order and the single delivery over two failed attempts with the
forwarder drained by hand. This adds the whole app as `serve` runs it (the forwarder's own background
task, tips sent through the simulator during the outage) and an outage of 2 minutes on the forwarder's
clock: the backoff grows to its 60 s cap, nothing is given up or sent out of order. The clock is the
test's, so the 2 minutes pass in a few seconds of wall time; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.app import create_app
from bot.config import load_settings
from bot.runtime import Runtime, build_runtime
from bot.tips.wiring import Timings
from storage.crypto import new_data_key
from storage.models import TipForward
from tests.conftest import FixedClock
from tests.e2e.serving import served
from tests.tips.conftest import forwards, launch, person
from tests.tips.loopback import Receiver

SECRET = "whsec-outage-0123456789"
OUTAGE_S = 120
STEP_S = 5
TIPS_AT = (0, 20, 40, 60, 80, 100)  # seconds into the outage at which a tip comes in
BACKOFF_MAX_S = 60.0
WAIT_S = 20.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver that is not listening yet."""
    found = Receiver()
    yield found
    await found.stop()


@pytest.fixture
def runtime(database_url: str, receiver: Receiver, clock: FixedClock) -> Runtime:
    """The whole runtime with the webhook pointing at the receiver, the forwarder polling often."""
    settings = load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        scheduler_enabled=False,
        privacy_statement_version="2026-1",
        controlroom_webhook_url=receiver.url,
        controlroom_webhook_secret=SECRET,
    )
    timings = Timings(
        stream_poll_s=0.05, forwarder_poll_s=0.02, backoff_base_s=1.0, backoff_max_s=BACKOFF_MAX_S
    )
    return build_runtime(settings, clock=clock, run_migrations=False, timings=timings)


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC time (SQLite gives it back naive)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


async def until(done: object, what: str) -> None:
    """Poll a condition (a callable) until it holds; fail, not hang, after WAIT_S."""
    assert callable(done)
    async with asyncio.timeout(WAIT_S):
        while not done():
            await asyncio.sleep(0.01)
    assert done(), what


def head(rows: list[TipForward]) -> TipForward | None:
    """The oldest forward not yet acknowledged by the webhook."""
    return next((f for f in rows if f.webhook_state == "pending"), None)


@pytest.mark.parametrize("outage", ["not_listening", "answers_503"])
async def test_receiver_down_for_two_minutes_then_every_tip_arrives_once_in_order(
    runtime: Runtime, receiver: Receiver, clock: FixedClock, outage: str
) -> None:
    if outage == "answers_503":
        receiver.failing = True
        await receiver.start()
    people = [person(runtime.sessions, runtime.vault, clock()) for _ in TIPS_AT]
    launch(runtime.sessions, clock(), *people)
    async with served(create_app(runtime)) as http:
        for second in range(0, OUTAGE_S, STEP_S):
            if second in TIPS_AT:
                who = people[TIPS_AT.index(second)]
                text = f"Tip {second}: ik zag hem bij de Jumbo richting station"
                sent = await http.post(
                    "/simulator/messages", json={"channel": "sms", "sender": who.sender, "text": text}
                )
                assert sent.status_code == 200
            clock.advance(seconds=STEP_S)
            first = head(forwards(runtime.sessions))
            if first is not None and (aware(first.webhook_next_at) or clock()) <= clock():
                # Due by the clock: the running forwarder tries it again (and fails) on its next pass.
                before = first.webhook_attempts

                def tried(before: int = before, forward_id: int | None = first.id) -> bool:
                    rows = {f.id: f for f in forwards(runtime.sessions)}
                    return rows[forward_id].webhook_attempts > before

                await until(tried, "a retry of the head while the receiver is down")
        written = [f.id for f in forwards(runtime.sessions)]
        assert len(written) == len(TIPS_AT)
        assert receiver.acknowledged() == [], "nothing was taken while the receiver was down"
        down = forwards(runtime.sessions)
        assert [f.webhook_state for f in down] == ["pending"] * len(TIPS_AT), "nothing given up"
        # The backoff grew to its cap: 1, 2, 4, 8, 16, 32 s and then 60 s apart, not once a second.
        assert 6 <= down[0].webhook_attempts <= 9, down[0].webhook_attempts

        receiver.failing = False
        if outage == "not_listening":
            await receiver.start()
        clock.advance(seconds=BACKOFF_MAX_S)  # the head is due again within one capped backoff
        await until(lambda: len(receiver.acknowledged()) >= len(written), "every tip after the outage")
        clock.advance(seconds=BACKOFF_MAX_S)
        await until(lambda: head(forwards(runtime.sessions)) is None, "all marked done")

    acknowledged = receiver.acknowledged()
    delivered = [int(p.headers["x-burgernet-delivery"]) for p in acknowledged]
    assert delivered == written, "each once, in the order written"
    texts = [json.loads(p.body)["text"] for p in acknowledged]
    assert [t.split(":")[0] for t in texts] == [f"Tip {s}" for s in TIPS_AT]
    assert all(p.headers["x-signature-256"] == p.expected_signature(SECRET) for p in acknowledged)
    if outage == "answers_503":
        refused = [p for p in receiver.posts if p.answered == 503]
        assert {int(p.headers["x-burgernet-delivery"]) for p in refused} == {written[0]}, "only the head"
