"""Registration by calling: the keys a caller presses, as transcripts through the router."""

from __future__ import annotations

import pytest

from bot.messages import Keypad
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.models import Address, ConversationState, OptOut, Participant
from storage.vocabulary import ChannelKind
from tests.flows.conftest import Converse, Person, rows, texts

CALLER = Person(ChannelKind.VOICE, "+31534800000")
SIGN_UP = ["START", "7511#", "12#", "1", "1"]


async def test_a_caller_signs_up_on_the_keys(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    nl = lambda key, **p: catalogue.render("nl", key, **p)  # noqa: E731
    transcript = await converse(CALLER, SIGN_UP)
    assert [texts(turn) for turn in transcript] == [
        [nl("voice_signup.ask_postcode")],
        [nl("voice_signup.ask_house_number")],
        [nl("voice_signup.confirm", number=12, pc4="7 5 1 1", place="Enschede")],
        [nl("voice_signup.consent")],
        [nl("voice_signup.welcome", place="Enschede")],
    ]
    assert [turn[-1].keypad for turn in transcript] == [
        Keypad.DIGITS,
        Keypad.DIGITS,
        Keypad.ONE_KEY,
        Keypad.ONE_KEY,
        None,
    ]
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.VOICE
    assert participant.phone_enc is not None and vault.decrypt(participant.phone_enc) == CALLER.sender
    assert participant.consent_at is not None and participant.name_enc is None
    [address] = rows(sessions, Address)
    assert (address.postcode, address.house_number, address.place) == ("7511", 12, "Enschede")
    assert rows(sessions, ConversationState) == []


async def test_in_english(converse: Converse, sessions: SessionFactory, catalogue: Catalogue) -> None:
    transcript = await converse(CALLER, ["ENGLISH", *SIGN_UP])
    assert texts(transcript[1]) == [catalogue.render("en", "voice_signup.ask_postcode")]
    assert texts(transcript[-1]) == [catalogue.render("en", "voice_signup.welcome", place="Enschede")]
    [participant] = rows(sessions, Participant)
    assert participant.language == "en"


@pytest.mark.parametrize(
    ("before", "keys", "key", "params"),
    [
        pytest.param(["START"], "75#", "voice_signup.postcode_bad", {}, id="postcode-too-short"),
        pytest.param(["START"], "", "voice_signup.postcode_bad", {}, id="postcode-nothing"),
        pytest.param(["START"], "0123", "voice_signup.postcode_bad", {}, id="postcode-leading-zero"),
        pytest.param(
            ["START"], "1000#", "voice_signup.postcode_unknown", {"pc4": "1 0 0 0"}, id="postcode-unknown"
        ),
        pytest.param(["START", "7511"], "0#", "voice_signup.house_number_bad", {}, id="house-zero"),
        pytest.param(["START", "7511"], "#", "voice_signup.house_number_bad", {}, id="house-nothing"),
        pytest.param(["START", "7511", "12"], "5", "voice_signup.confirm_retry", {}, id="confirm-other-key"),
        pytest.param(
            ["START", "7511", "12", "1"], "9", "voice_signup.consent_retry", {}, id="consent-other-key"
        ),
    ],
)  # fmt: skip
async def test_a_wrong_key_is_explained_and_the_question_waits(
    converse: Converse,
    sessions: SessionFactory,
    catalogue: Catalogue,
    before: list[str],
    keys: str,
    key: str,
    params: dict[str, str],
) -> None:
    transcript = await converse(CALLER, [*before, keys])
    [reply] = transcript[-1]
    assert reply.text == catalogue.render("nl", key, **params)
    assert reply.keypad == transcript[-2][-1].keypad
    [state] = rows(sessions, ConversationState)
    assert state.flow == "phone_registration"
    assert rows(sessions, Participant) == []


async def test_2_at_the_read_back_asks_the_address_again(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(CALLER, ["START", "7511", "12", "2", "7512", "3", "1"])
    assert texts(transcript[3]) == [catalogue.render("nl", "voice_signup.ask_postcode")]
    assert texts(transcript[-1]) == [catalogue.render("nl", "voice_signup.consent")]


async def test_no_consent_stores_nothing(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(CALLER, ["START", "7511", "12", "1", "2"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "voice_signup.no_consent")]
    assert transcript[-1][-1].keypad is None
    assert rows(sessions, Participant) == []
    assert rows(sessions, ConversationState) == []


async def test_a_hidden_or_foreign_number_cannot_sign_up(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(Person(ChannelKind.VOICE, "+12025550123"), ["START"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "voice_signup.caller_unknown")]
    assert rows(sessions, ConversationState) == []


async def test_stop_by_phone_erases_and_says_so_for_a_call(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await converse(CALLER, SIGN_UP)
    transcript = await converse(CALLER, ["STOP"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.stopped_call")]
    [participant] = rows(sessions, Participant)
    assert participant.phone_enc is None
    assert len(rows(sessions, OptOut)) == 1


async def test_too_many_wrong_keys_end_the_sign_up_in_words_for_a_call(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(CALLER, ["START", *["12#"] * 6])
    [reply] = transcript[-1]
    assert reply.text == catalogue.render("nl", "router.too_many_retries_call")
    assert reply.keypad is None  # nothing asked: the call ends
    assert rows(sessions, ConversationState) == []
