"""Registration and STOP by calling our number: signed Twilio voice webhooks into the running app, and
the TwiML it answers with. The conversation between callbacks lives in the caller's conversation state.
"""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from storage.crypto import new_data_key
from storage.models import ChannelIdentity, ConversationState, OptOut, Participant
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import served
from tests.fakes.twilio_api import FakeTwilioApi

TESTDATA = Path(__file__).parent.parent / "channels" / "testdata" / "twilio"
ACCOUNT_SID = "AC" + "9" * 32
AUTH_TOKEN = "e2e9" * 8
PUBLIC = "https://burgernet.example.nl"
OUR_NUMBER = "+3197010254321"
CONTROLROOM = "+31534800000"
CALLER = "+31534812345"
OTHER_CALLER = "+31201234567"
VOICE = "/webhooks/twilio/voice"
MENU = "/webhooks/twilio/voice/menu"
KEYS = "/webhooks/twilio/voice/keys"
_sids = itertools.count(1)


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def settings(database_url: str, fake: FakeTwilioApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_voice_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        controlroom_phone=CONTROLROOM,
        privacy_statement_version="2026-1",
        scheduler_enabled=False,
    )


@pytest.fixture
async def app(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    runtime = build_runtime(settings, clock=clock, run_migrations=False)
    async with served(create_app(runtime)) as http:
        yield runtime, http


class Call:
    """One inbound call: every callback carries its CallSid and the caller's number, as Twilio's do."""

    def __init__(self, http: httpx.AsyncClient, caller: str = CALLER) -> None:
        self.http = http
        self.form = json.loads((TESTDATA / "voice_inbound.json").read_text(encoding="utf-8"))
        self.form |= {
            "CallSid": f"CA{next(_sids):032x}",
            "From": caller,
            "Caller": caller,
            "CallStatus": "in-progress",
        }

    async def post(self, path: str, *, digits: str | None = None, signed: bool = True) -> ET.Element:
        """POST the callback signed for our public URL; the TwiML answered."""
        form = dict(self.form)
        if digits is not None:
            form |= {
                "Digits": digits,
                "FinishedOnKey": "#" if path.startswith(KEYS) else "",
                "msg": "Gather End",
            }
        signature = RequestValidator(AUTH_TOKEN if signed else "0" * 32).compute_signature(
            PUBLIC + path, form
        )
        response = await self.http.post(
            path,
            content=urlencode(form).encode("utf-8"),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )
        if not signed:
            assert response.status_code == 403
            return ET.Element("Refused")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/xml")
        return ET.fromstring(response.text)


def verbs(twiml: ET.Element) -> list[tuple[str, dict[str, str], str]]:
    """The TwiML's verbs in order, nested ones after their parent: (tag, attributes, text)."""
    assert twiml.tag == "Response"
    return [(el.tag, dict(el.attrib), (el.text or "").strip()) for el in twiml.iter() if el is not twiml]


def said(twiml: ET.Element) -> list[str]:
    return [text for tag, _, text in verbs(twiml) if tag == "Say"]


def rows(runtime: Runtime, model: type[Any]) -> list[Any]:
    with runtime.sessions() as session:
        return list(session.exec(select(model)))


def keys_gather(twiml: ET.Element, *, one_key: bool, lang: str = "nl") -> dict[str, str]:
    """The question's gather: keys only, to the keys webhook; after it, "we heard nothing" and hang up."""
    found = verbs(twiml)
    assert found[0][0] == "Gather"
    gather = found[0][1]
    assert gather["input"] == "dtmf"
    assert gather["action"] == f"{PUBLIC}{KEYS}?lang={lang}"
    if one_key:
        assert gather["numDigits"] == "1" and "finishOnKey" not in gather
    else:
        assert gather["finishOnKey"] == "#"
    assert "actionOnEmptyResult" not in gather
    assert [tag for tag, _, _ in found[-2:]] == ["Say", "Hangup"]
    return gather


async def test_the_call_answers_with_the_menu(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    twiml = await Call(http).post(VOICE)
    [(tag, gather, _), (say, attrs, text)] = verbs(twiml)
    assert (tag, say) == ("Gather", "Say")
    assert (gather["input"], gather["numDigits"], gather["language"]) == ("dtmf speech", "1", "nl-NL")
    assert gather["action"] == f"{PUBLIC}{MENU}?lang=nl"
    assert (attrs["language"], text) == ("nl-NL", runtime.catalogue.render("nl", "voice.menu"))


async def test_sign_up_by_phone(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    nl = lambda key, **p: runtime.catalogue.render("nl", key, **p)  # noqa: E731
    call = Call(http)
    twiml = await call.post(MENU, digits="1")
    keys_gather(twiml, one_key=False)
    assert said(twiml) == [nl("voice_signup.ask_postcode"), nl("voice.no_input")]
    # Between callbacks the answers wait in the caller's own conversation state, not in the URL.
    [state] = rows(runtime, ConversationState)
    [identity] = rows(runtime, ChannelIdentity)
    assert (state.flow, state.step, state.identity_id) == ("phone_registration", "postcode", identity.id)
    assert identity.channel is ChannelKind.VOICE

    twiml = await call.post(KEYS, digits="7511")
    keys_gather(twiml, one_key=False)
    assert said(twiml)[0] == nl("voice_signup.ask_house_number")
    twiml = await call.post(KEYS, digits="12")
    keys_gather(twiml, one_key=True)
    assert said(twiml)[0] == nl("voice_signup.confirm", number=12, pc4="7 5 1 1", place="Enschede")
    twiml = await call.post(KEYS, digits="1")
    keys_gather(twiml, one_key=True)
    assert said(twiml)[0] == nl("voice_signup.consent")
    twiml = await call.post(KEYS, digits="1")
    assert [(tag, text) for tag, _, text in verbs(twiml)] == [
        ("Say", nl("voice_signup.welcome", place="Enschede")),
        ("Hangup", ""),
    ]
    [participant] = rows(runtime, Participant)
    assert participant.preferred_channel is ChannelKind.VOICE
    assert participant.phone_enc is not None and runtime.vault.decrypt(participant.phone_enc) == CALLER
    assert rows(runtime, ConversationState) == []


@pytest.mark.parametrize(
    ("before", "keys", "key", "one_key"),
    [
        pytest.param([], "12", "voice_signup.postcode_bad", False, id="postcode-not-four-digits"),
        pytest.param([], "", "voice_signup.postcode_bad", False, id="postcode-only-the-hash-key"),
        pytest.param(["7511", "12"], "7", "voice_signup.confirm_retry", True, id="wrong-confirmation-key"),
        pytest.param(["7511", "12", "1"], "5", "voice_signup.consent_retry", True, id="wrong-consent-key"),
    ],
)
async def test_a_wrong_answer_is_explained_and_asked_again(
    app: tuple[Runtime, httpx.AsyncClient], before: list[str], keys: str, key: str, one_key: bool
) -> None:
    runtime, http = app
    call = Call(http)
    await call.post(MENU, digits="1")
    for digits in before:
        await call.post(KEYS, digits=digits)
    twiml = await call.post(KEYS, digits=keys)
    keys_gather(twiml, one_key=one_key)
    assert said(twiml)[0] == runtime.catalogue.render("nl", key)
    assert rows(runtime, Participant) == []
    [state] = rows(runtime, ConversationState)
    assert state.flow == "phone_registration"


async def test_an_unknown_postcode_is_read_back_digit_by_digit(
    app: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, http = app
    call = Call(http)
    await call.post(MENU, digits="1")
    twiml = await call.post(KEYS, digits="1000")
    keys_gather(twiml, one_key=False)
    assert said(twiml)[0] == runtime.catalogue.render("nl", "voice_signup.postcode_unknown", pc4="1 0 0 0")


async def test_2_at_the_read_back_starts_the_address_again(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    call = Call(http)
    for digits in ("1",):
        await call.post(MENU, digits=digits)
    for digits in ("7511", "12"):
        await call.post(KEYS, digits=digits)
    twiml = await call.post(KEYS, digits="2")
    keys_gather(twiml, one_key=False)
    assert said(twiml)[0] == runtime.catalogue.render("nl", "voice_signup.ask_postcode")


async def test_no_consent_ends_the_call_with_nothing_stored(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    call = Call(http)
    await call.post(MENU, digits="1")
    for digits in ("7511", "12", "1"):
        await call.post(KEYS, digits=digits)
    twiml = await call.post(KEYS, digits="2")
    assert [(tag, text) for tag, _, text in verbs(twiml)] == [
        ("Say", runtime.catalogue.render("nl", "voice_signup.no_consent")),
        ("Hangup", ""),
    ]
    assert rows(runtime, Participant) == []
    assert rows(runtime, ConversationState) == []


async def test_another_caller_cannot_answer_someone_elses_questions(
    app: tuple[Runtime, httpx.AsyncClient],
) -> None:
    runtime, http = app
    await Call(http).post(MENU, digits="1")
    # The keys webhook, signed, but from a number with no sign-up going on: nothing advances.
    intruder = Call(http, caller=OTHER_CALLER)
    for digits in ("7511", "12", "1", "1"):
        twiml = await intruder.post(KEYS, digits=digits)
        assert verbs(twiml)[-1][0] == "Hangup"
    assert rows(runtime, Participant) == []
    [state] = rows(runtime, ConversationState)
    assert state.step == "postcode"


async def test_9_unsubscribes_and_erases(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    call = Call(http)
    await call.post(MENU, digits="1")
    for digits in ("7511", "12", "1", "1"):
        await call.post(KEYS, digits=digits)
    [participant] = rows(runtime, Participant)

    twiml = await Call(http).post(MENU, digits="9")
    assert [(tag, text) for tag, _, text in verbs(twiml)] == [
        ("Say", runtime.catalogue.render("nl", "unsubscribe.stopped_call")),
        ("Hangup", ""),
    ]
    [erased] = rows(runtime, Participant)
    assert erased.id == participant.id and erased.phone_enc is None
    assert len(rows(runtime, OptOut)) == 1


async def test_9_from_a_number_we_do_not_know(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    twiml = await Call(http).post(MENU, digits="9")
    assert said(twiml) == [runtime.catalogue.render("nl", "unsubscribe.stopped_unregistered_call")]


async def test_2_is_english_for_the_menu_and_the_sign_up(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    en = lambda key, **p: runtime.catalogue.render("en", key, **p)  # noqa: E731
    call = Call(http)
    twiml = await call.post(MENU, digits="2")
    [(_, gather, _), (_, attrs, text)] = verbs(twiml)
    assert gather["action"] == f"{PUBLIC}{MENU}?lang=en"
    assert (attrs["language"], text) == ("en-GB", en("voice.menu"))
    twiml = await call.post(f"{MENU}?lang=en", digits="1")
    keys_gather(twiml, one_key=False, lang="en")
    assert said(twiml) == [en("voice_signup.ask_postcode"), en("voice.no_input")]
    assert {attrs["language"] for tag, attrs, _ in verbs(twiml) if tag == "Say"} == {"en-GB"}


async def test_0_connects_to_the_control_room(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    runtime, http = app
    twiml = await Call(http).post(MENU, digits="0")
    assert [(tag, text) for tag, _, text in verbs(twiml)] == [
        ("Say", runtime.catalogue.render("nl", "voice.connecting")),
        ("Dial", CONTROLROOM),
    ]


async def test_silence_in_the_menu_offers_a_recorded_tip(app: tuple[Runtime, httpx.AsyncClient]) -> None:
    _, http = app
    twiml = await Call(http).post(MENU)
    assert [tag for tag, _, _ in verbs(twiml)] == ["Say", "Record", "Say"]


@pytest.mark.parametrize("path", [VOICE, MENU, KEYS])
async def test_a_wrongly_signed_callback_is_refused(
    app: tuple[Runtime, httpx.AsyncClient], path: str
) -> None:
    runtime, http = app
    await Call(http).post(path, digits="1", signed=False)
    assert rows(runtime, ConversationState) == []
