"""The public sign-up page end to end: form → code (sent by the dispatcher through fake Twilio) → done.

The whole app serves on loopback as `serve` wires it, with the Telegram webhook at a fake Bot API and
Twilio at a fake; the tests post forms as a browser does (cookie and hidden fields) and read what the
providers were asked to send.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.public.signup import CSRF_COOKIE, SIGNUP_CSP
from bot.runtime import Runtime
from storage.crypto import new_data_key
from storage.models import Address, ChannelIdentity, Participant, PhoneVerification, WebSignup
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import served_runtime
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.twilio_api import FakeTwilioApi

TOKEN = "7000000002:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "e2e-signup-secret_0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "sgnp" * 8
PUBLIC = "https://burgernet.example.nl"
OUR_NUMBER = "+3197010254321"
PHONE = "+31612345678"
CHAT = 551234567  # the chat of tests/channels/testdata/telegram/text.json
TESTDATA = Path(__file__).parent.parent / "channels" / "testdata" / "telegram"
FORM = {"postcode": "7511 AB", "house_number": "12", "addition": "", "phone": "06 12345678", "consent": "yes"}
_ids = itertools.count(820_000_001)
_sids = itertools.count(1)


@dataclass
class Running:
    """The app serving on loopback, its runtime and the two fake providers."""

    runtime: Runtime
    http: httpx.AsyncClient
    telegram: FakeTelegramApi
    twilio: FakeTwilioApi


@pytest.fixture
def telegram() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, username="BurgernetTestBot", max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def twilio() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def settings(database_url: str, telegram: FakeTelegramApi, twilio: FakeTwilioApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        telegram_bot_token=TOKEN,
        telegram_bot_username="BurgernetTestBot",
        telegram_api_base_url=telegram.base_url,
        telegram_webhook_secret=SECRET,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=f"whatsapp:{OUR_NUMBER}",
        privacy_statement_version="2026-1",
        twilio_api_base_url=twilio.base_url,
        dispatch_rate_limits=False,
        dispatch_poll_interval_s=0.05,
        scheduler_enabled=False,
    )


@pytest.fixture
async def running(
    settings: Settings, clock: FixedClock, telegram: FakeTelegramApi, twilio: FakeTwilioApi
) -> AsyncIterator[Running]:
    async with served_runtime(settings, clock, telegram_options={"per_chat_interval": 0}) as (runtime, http):
        yield Running(runtime, http, telegram, twilio)


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1)


async def open_form(running: Running, lang: str = "nl", **headers: str) -> str:
    """GET the form (the cookie lands in the client); its CSRF field."""
    page = await running.http.get(f"/aanmelden?lang={lang}", headers=headers)
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == SIGNUP_CSP
    return hidden(page.text, "csrf")


async def send_form(
    running: Running, channel: str, lang: str = "nl", client: str | None = None, **fields: str
) -> httpx.Response:
    headers = {"X-Forwarded-For": client} if client else {}
    csrf = await open_form(running, lang, **headers)
    form = FORM | {"channel": channel, "lang": lang, "csrf": csrf, "website": ""} | fields
    return await running.http.post("/aanmelden", data=form, headers=headers)


async def send_code(running: Running, page: httpx.Response, code: str) -> httpx.Response:
    form = {
        "csrf": hidden(page.text, "csrf"),
        "ref": hidden(page.text, "ref"),
        "lang": hidden(page.text, "lang"),
    }
    return await running.http.post("/aanmelden/code", data=form | {"code": code})


async def twilio_messages(running: Running, count: int, timeout_s: float = 10.0) -> list[dict[str, str]]:
    """The messages Twilio accepted, once there are `count` (the dispatcher sends in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(running.twilio.messages()) < count:
        assert loop.time() < deadline, running.twilio.messages()
        await asyncio.sleep(0.02)
    return running.twilio.messages()


async def telegram_sends(running: Running, count: int) -> list[Any]:
    """The fake Bot API's sendMessage calls once there are `count` (the dispatcher sends them)."""
    # The fake's own wait blocks: it must not hold up the event loop the dispatcher sends from.
    return await asyncio.to_thread(running.telegram.wait_for, "sendMessage", count, 10.0)


def the_code(message: dict[str, str]) -> str:
    found = re.search(r"\b(\d{6})\b", message["Body"])
    assert found
    return found.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def rows(running: Running, model: type[Any]) -> list[Any]:
    with running.runtime.sessions() as session:
        return list(session.exec(select(model)))


async def by_sms(running: Running, sender: str, text: str) -> None:
    """A signed Twilio SMS webhook from `sender`."""
    sid = f"SM{next(_sids):032x}"
    form = {
        "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": ACCOUNT_SID,
        "From": sender, "To": OUR_NUMBER, "Body": text, "NumMedia": "0", "NumSegments": "1",
        "SmsStatus": "received", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    response = await running.http.post(
        path,
        content=urlencode(form).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 200, response.text


async def on_telegram(running: Running, text: str) -> None:
    update = copy.deepcopy(json.loads((TESTDATA / "text.json").read_text(encoding="utf-8")))
    update["update_id"] = next(_ids)
    update["message"]["message_id"] = next(_ids)
    update["message"]["text"] = text
    response = await running.http.post(WEBHOOK_PATH, json=update, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 200


# -- the whole path per channel ------------------------------------------------------------------


async def test_sms_sign_up_gets_only_the_code_and_is_stored_as_the_chat_stores_one(running: Running) -> None:
    page = await send_form(running, "sms")
    assert page.status_code == 200, page.text
    assert "+31\u00a06\u00a0****5678" in page.text
    [message] = await twilio_messages(running, 1)
    assert message["To"] == PHONE
    code = the_code(message)
    assert message["Body"] == running.runtime.catalogue.render("nl", "registration.code_message", code=code)

    again = await send_code(running, page, wrong(code))
    assert again.status_code == 400
    assert running.runtime.catalogue.render("nl", "signup.errors.code_wrong") in again.text
    assert rows(running, Participant) == []

    done = await send_code(running, again, code)
    assert done.status_code == 200, done.text
    assert 'data-done="sms"' in done.text
    [participant] = rows(running, Participant)
    assert participant.preferred_channel is ChannelKind.SMS
    assert participant.consent_version == "2026-1"
    assert participant.consent_at is not None
    assert participant.language == "nl"
    assert participant.phone_hash == running.runtime.vault.lookup_hash(PHONE)
    [address] = rows(running, Address)
    assert (address.postcode, address.house_number, address.place) == ("7511 AB", 12, "Enschede")
    [identity] = rows(running, ChannelIdentity)
    assert (identity.channel, identity.participant_id, identity.verified) == (
        ChannelKind.SMS,
        participant.id,
        True,
    )
    [signup] = rows(running, WebSignup)
    assert (signup.state, signup.data_enc, signup.participant_id) == ("done", None, participant.id)
    await asyncio.sleep(0.2)
    assert len(running.twilio.messages()) == 1  # nothing but the code went out

    # The page is done with: the same code again is an expired sign-up, not a second registration.
    twice = await send_code(running, page, code)
    assert twice.status_code == 410
    assert 'data-refused="expired"' in twice.text


async def test_whatsapp_done_page_links_to_our_number_with_my_data(running: Running) -> None:
    page = await send_form(running, "whatsapp", lang="en")
    [message] = await twilio_messages(running, 1)
    assert message["To"] == f"whatsapp:{PHONE}"  # the code comes where the alerts will
    assert message["Body"] == running.runtime.catalogue.render(
        "en", "registration.code_message", code=the_code(message)
    )
    done = await send_code(running, page, the_code(message))
    assert done.status_code == 200
    assert '<html lang="en">' in done.text
    assert f'href="https://wa.me/{OUR_NUMBER.lstrip("+")}?text=MY%20DATA"' in done.text
    [participant] = rows(running, Participant)
    assert (participant.preferred_channel, participant.language) == (ChannelKind.WHATSAPP, "en")


async def test_telegram_deep_link_binds_the_chat_once(running: Running, clock: FixedClock) -> None:
    page = await send_form(running, "telegram")
    [message] = await twilio_messages(running, 1)
    assert message["To"] == PHONE  # by SMS: Telegram has no number to send to
    done = await send_code(running, page, the_code(message))
    link = re.search(r'href="https://t\.me/BurgernetTestBot\?start=(join_[0-9a-f]{32})"', done.text)
    assert link, done.text
    [signup] = rows(running, WebSignup)
    assert signup.link_hash is not None and link.group(1) not in signup.link_hash

    await on_telegram(running, f"/start {link.group(1)}")
    [welcome] = await telegram_sends(running, 1)
    assert welcome.params["text"] == running.runtime.catalogue.render(
        "nl", "signup.telegram_linked", place="Enschede"
    )
    [participant] = rows(running, Participant)
    assert participant.preferred_channel is ChannelKind.TELEGRAM
    chat = [i for i in rows(running, ChannelIdentity) if i.channel is ChannelKind.TELEGRAM]
    assert [i.participant_id for i in chat] == [participant.id]

    await on_telegram(running, f"/start {link.group(1)}")
    calls = await telegram_sends(running, 2)
    assert calls[1].params["text"] == running.runtime.catalogue.render("nl", "signup.telegram_link_invalid")


async def test_a_telegram_link_expires(running: Running, clock: FixedClock) -> None:
    page = await send_form(running, "telegram")
    [message] = await twilio_messages(running, 1)
    done = await send_code(running, page, the_code(message))
    link = re.search(r"start=(join_[0-9a-f]{32})", done.text)
    assert link
    clock.advance(minutes=61)
    await on_telegram(running, f"/start {link.group(1)}")
    [answer] = await telegram_sends(running, 1)
    assert answer.params["text"] == running.runtime.catalogue.render("nl", "signup.telegram_link_invalid")
    assert [i for i in rows(running, ChannelIdentity) if i.participant_id and i.channel == "telegram"] == []


# -- the code page -------------------------------------------------------------------------------


async def test_an_expired_code_stores_nothing(running: Running, clock: FixedClock) -> None:
    page = await send_form(running, "sms")
    [message] = await twilio_messages(running, 1)
    clock.advance(minutes=11)
    late = await send_code(running, page, the_code(message))
    assert late.status_code == 410
    assert 'data-refused="code_expired"' in late.text
    assert rows(running, Participant) == []


async def test_three_wrong_codes_use_up_the_tries_and_a_slip_uses_none(running: Running) -> None:
    page = await send_form(running, "sms")
    [message] = await twilio_messages(running, 1)
    code = the_code(message)
    slip = await send_code(running, page, "12a45")
    assert slip.status_code == 400
    assert running.runtime.catalogue.render("nl", "signup.errors.code_not_digits") in slip.text
    for _ in range(2):
        page = await send_code(running, page, wrong(code))
        assert page.status_code == 400
    used_up = await send_code(running, page, wrong(code))
    assert 'data-refused="code_used_up"' in used_up.text
    after = await send_code(running, page, code)
    assert after.status_code == 410
    assert rows(running, Participant) == []


# -- abuse ---------------------------------------------------------------------------------------


async def test_a_filled_honeypot_looks_fine_and_does_nothing(running: Running) -> None:
    page = await send_form(running, "sms", website="https://spam.example")
    assert page.status_code == 200
    assert "+31\u00a06\u00a0****5678" in page.text
    assert 'name="ref"' in page.text
    follow = await send_code(running, page, "123456")
    assert follow.status_code == 410
    await asyncio.sleep(0.2)
    assert rows(running, WebSignup) == []
    assert rows(running, PhoneVerification) == []
    assert running.twilio.messages() == []


@pytest.mark.parametrize("forge", ["no_cookie", "other_cookie", "tampered", "expired", "missing"])
async def test_a_forged_or_stale_form_is_refused(running: Running, clock: FixedClock, forge: str) -> None:
    csrf = await open_form(running)
    if forge == "no_cookie":
        running.http.cookies.clear()
    elif forge == "other_cookie":
        running.http.cookies.set(CSRF_COOKIE, "x" * 43, path="/aanmelden")
    elif forge == "tampered":
        csrf = csrf[:-1] + ("0" if csrf[-1] != "0" else "1")
    elif forge == "expired":
        clock.advance(hours=2, seconds=1)
    else:
        csrf = ""
    form = FORM | {"channel": "sms", "lang": "nl", "csrf": csrf}
    refused = await running.http.post("/aanmelden", data=form)
    assert refused.status_code == 403
    assert 'data-refused="csrf"' in refused.text
    assert rows(running, WebSignup) == []
    assert rows(running, PhoneVerification) == []


async def test_codes_per_client_address_are_limited(running: Running) -> None:
    numbers = ["06 12345671", "06 12345672", "06 12345673", "06 12345674"]
    pages = [await send_form(running, "sms", client="198.51.100.7", phone=n) for n in numbers]
    assert [p.status_code for p in pages] == [200, 200, 200, 429]
    assert 'data-refused="limited"' in pages[-1].text
    # Another address (through the trusted proxy) is not held back by the first one.
    other = await send_form(running, "sms", client="198.51.100.8", phone=numbers[-1])
    assert other.status_code == 200
    await twilio_messages(running, 4)


async def test_codes_per_number_are_limited_across_addresses(running: Running) -> None:
    pages = [await send_form(running, "sms", client=f"198.51.100.{n}") for n in range(1, 5)]
    assert [p.status_code for p in pages] == [200, 200, 200, 429]
    await twilio_messages(running, 3)
    await asyncio.sleep(0.2)
    assert len(running.twilio.messages()) == 3


async def test_an_opted_out_number_hears_the_same_and_gets_nothing(running: Running) -> None:
    await by_sms(running, PHONE, "STOP")
    stop_replies = len(await twilio_messages(running, 1))
    page = await send_form(running, "sms")
    assert page.status_code == 200
    assert "+31\u00a06\u00a0****5678" in page.text and 'name="ref"' in page.text
    await asyncio.sleep(0.3)
    assert len(running.twilio.messages()) == stop_replies  # no code to a number that said STOP
    for guess in ("000000", "123456"):
        page = await send_code(running, page, guess)
        assert page.status_code == 400
    assert rows(running, Participant) == []
    [verification] = rows(running, PhoneVerification)
    assert verification.state == "withheld"


# -- the form ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "key"),
    [
        ({"postcode": ""}, "postcode", "postcode_missing"),
        ({"postcode": "75111 AB"}, "postcode", "postcode_invalid"),
        ({"postcode": "1000 AA"}, "postcode", "postcode_unknown"),
        ({"house_number": "twaalf"}, "house_number", "house_number_invalid"),
        ({"phone": ""}, "phone", "phone_missing"),
        ({"phone": "053 1234567"}, "phone", "phone_not_mobile"),
        ({"phone": "+32 470 12 34 56"}, "phone", "phone_not_nl"),
        ({"channel": ""}, "channel", "channel_missing"),
        ({"consent": ""}, "consent", "consent_missing"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
@pytest.mark.parametrize("lang", ["nl", "en"])
async def test_form_errors_are_named_and_linked(
    running: Running, fields: dict[str, str], field: str, key: str, lang: str
) -> None:
    fields = dict(fields)  # the table is shared by both languages
    page = await send_form(running, fields.pop("channel", "sms"), lang=lang, **fields)
    assert page.status_code == 400
    text = running.runtime.catalogue.render(lang, f"signup.errors.{key}")
    assert f'id="{field}-error"' in page.text and text in page.text
    assert "data-error-summary" in page.text and "autofocus" in page.text
    if field not in ("channel",):
        assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error"', page.text)
    assert rows(running, WebSignup) == []


async def test_a_belgian_mobile_may_sign_up_for_telegram(running: Running) -> None:
    page = await send_form(running, "telegram", phone="+32 470 12 34 56")
    assert page.status_code == 200
    [message] = await twilio_messages(running, 1)
    assert message["To"] == "+32470123456"


async def test_language_follows_accept_language(running: Running) -> None:
    page = await running.http.get("/aanmelden", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in page.text
    css = await running.http.get("/aanmelden/signup.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
