"""The tip services wired into the real runtime and app (`build_runtime(tips=...)`, as `serve` does):
a signed SMS webhook becomes a stored tip, an SSE event, a signed webhook POST, a reply at the fake Twilio
and a tip in the control room's feed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.tips.wiring import Timings
from storage.crypto import new_data_key
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled, served_runtime
from tests.fakes.twilio_api import FakeTwilioApi
from tests.tips.conftest import launch, person
from tests.tips.loopback import Receiver, free_port

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "tips" * 8
OUR_NUMBER = "+3197010254321"
TOKEN = "api-token-wiring"
SECRET = "whsec-wiring"


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.stop()


@pytest.fixture
def settings(database_url: str, fake: FakeTwilioApi, receiver: Receiver) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=f"http://127.0.0.1:{free_port()}",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        api_token=TOKEN,
        controlroom_webhook_url=receiver.url,
        controlroom_webhook_secret=SECRET,
        scheduler_enabled=False,
        privacy_statement_version="2026-1",
    )


@pytest.fixture
async def served(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    timings = Timings(stream_poll_s=0.05, forwarder_poll_s=0.05)
    port = int(settings.public_base_url.rsplit(":", 1)[1])
    async with served_runtime(settings, clock, port=port, timings=timings) as (runtime, http):
        yield runtime, http


async def test_a_tip_through_the_running_app(
    served: tuple[Runtime, httpx.AsyncClient], settings: Settings, fake: FakeTwilioApi, receiver: Receiver,
    clock: FixedClock,
) -> None:  # fmt: skip
    runtime, http = served
    assert runtime.tip_feed is not None and runtime.tip_feed.available
    jan = person(runtime.sessions, runtime.vault, clock())
    action = launch(runtime.sessions, clock(), jan)
    form = {
        "MessageSid": "SM" + "9" * 32, "SmsMessageSid": "SM" + "9" * 32, "AccountSid": ACCOUNT_SID,
        "From": jan.sender, "To": OUR_NUMBER, "Body": "Ik zag hem om 15:10 bij de Jumbo, richting station",
        "NumMedia": "0", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = "/webhooks/twilio/sms"
    twilio_signature = RequestValidator(AUTH_TOKEN).compute_signature(settings.public_base_url + path, form)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.stream("GET", "/api/v1/tips/stream", headers=auth) as stream:
        posted = await http.post(
            path,
            content=urlencode(form).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": twilio_signature,
            },
        )
        assert posted.status_code == 200
        lines = stream.aiter_lines()
        while not (line := await asyncio.wait_for(anext(lines), 10)).startswith("data:"):
            pass
    event = json.loads(line[5:])
    assert (event["action_code"], event["location"]["text"], event["direction"]) == (
        action.code,
        "Jumbo",
        "station",
    )

    # The thanks leaves through the dispatcher, which may still be sending it when the event arrives.
    await outbox_settled(runtime.sessions)
    [reply] = fake.messages()
    assert reply["To"] == jan.sender
    assert reply["Body"] == runtime.catalogue.render("nl", "tip.thanks", code=action.code)

    await asyncio.wait_for(receiver.wait_for(1), 10)
    [post] = receiver.posts
    assert post.headers["x-signature-256"] == post.expected_signature(SECRET)
    assert json.loads(post.body)["id"] == event["id"]

    [view] = runtime.tip_feed.tips(action_id=action.id or 0)
    assert view.id == event["id"] and view.has_phone
