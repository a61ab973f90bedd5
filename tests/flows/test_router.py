"""Conversation transcripts: keyword priority, keywords mid-flow, cancelling, expiry, bad input, failures."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

import pytest

from bot.channels.segments import count_segments
from bot.config import Settings
from bot.conversations import ConversationRouter, StorageUnavailable
from bot.flows.engine import Flow, FlowContext, Goto, Step, Transition
from bot.flows.keywords import Keyword, keyword_of
from bot.texts import Catalogue
from nlu.keywords import KeywordParser
from nlu.types import ParseResult
from storage.crypto import DataVault
from storage.db import SessionFactory, make_engine, session_factory
from storage.geo import PostcodeBook
from storage.models import AuditEvent, ChannelIdentity, ConversationState, Participant
from storage.participants import audit
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.flows.conftest import (
    SMS,
    TELEGRAM,
    WHATSAPP,
    Converse,
    Person,
    incoming,
    last,
    register_steps,
    rows,
    texts,
)


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP", Keyword.STOP),
        ("stop", Keyword.STOP),
        (" Stoppen! ", Keyword.STOP),
        ("UIT", Keyword.STOP),
        ("afmelden", Keyword.STOP),
        ("STOPALL", Keyword.STOP),
        ("UNSUBSCRIBE", Keyword.STOP),
        ("END", Keyword.STOP),
        ("QUIT", Keyword.STOP),
        ("CANCEL", Keyword.STOP),
        ("/stop", Keyword.STOP),
        ("/stop@BurgernetBot", Keyword.STOP),
        ("START", Keyword.START),
        ("aanmelden", Keyword.START),
        ("/start", Keyword.START),
        ("HELP", Keyword.HELP),
        ("hulp", Keyword.HELP),
        ("/help", Keyword.HELP),
        ("MIJN GEGEVENS", Keyword.MY_DATA),
        ("mijn  gegevens", Keyword.MY_DATA),
        ("/mijngegevens", Keyword.MY_DATA),
        ("ENGLISH", Keyword.LANGUAGE),
        ("Nederlands", Keyword.LANGUAGE),
        ("annuleer", Keyword.CANCEL),
        ("annuleren", Keyword.CANCEL),
        ("laat maar", Keyword.CANCEL),
        ("Laat maar!", Keyword.CANCEL),
        ("laat maar zitten", Keyword.CANCEL),
        ("stop maar", Keyword.CANCEL),
        ("never mind", Keyword.CANCEL),
        ("laat maar weten wanneer", None),
        ("ADRES", Keyword.ADDRESS),
        ("stop met sms", None),
        ("ik wil stoppen", None),
        ("/stop nu", None),
        ("", None),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_keywords(text: str, keyword: Keyword | None) -> None:
    assert keyword_of(text) is keyword


@pytest.mark.parametrize("person", [SMS, WHATSAPP, TELEGRAM], ids=["sms", "whatsapp", "telegram"])
@pytest.mark.parametrize("word", ["STOP", "stoppen", "UIT", "AFMELDEN", "/stop", "cancel"])
async def test_stop_mid_registration_ends_the_flow_on_every_channel(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, person: Person, word: str
) -> None:
    transcript = await converse(person, ["START", "JA", "Jan", word])
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.stopped_unregistered")]
    assert rows(sessions, ConversationState) == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.opted_out is True


@pytest.mark.parametrize(
    ("keyword", "key"),
    [
        ("HELP", "help.unregistered_chat"),
        ("hulp", "help.unregistered_chat"),
        ("MIJN GEGEVENS", "mydata.none"),
    ],
)
async def test_keyword_mid_flow_answers_then_asks_again(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, keyword: str, key: str
) -> None:
    transcript = await converse(TELEGRAM, ["START", "JA", "Jan", keyword, "7511 AB 12"])
    answer, again = transcript[3]
    assert answer.text == catalogue.render("nl", key, channel="Telegram")
    assert again.text == catalogue.render("nl", "address.ask_home")
    assert transcript[4][0].text.startswith("7511 AB 12: is dit Enschede")
    [state] = rows(sessions, ConversationState)
    assert state.step == "confirm_place"


async def test_english_mid_flow_switches_and_asks_again_in_english(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["START", "JA", "ENGLISH", "NEDERLANDS"])
    assert texts(transcript[2]) == [
        catalogue.render("en", "language.switched"),
        catalogue.render("en", "registration.ask_name"),
    ]
    assert texts(transcript[3])[1] == catalogue.render("nl", "registration.ask_name")
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.language == "nl"


async def test_language_is_kept_for_a_participant(converse: Converse, sessions: SessionFactory) -> None:
    await converse(SMS, [*register_steps(SMS), "ENGLISH"])
    [participant] = rows(sessions, Participant)
    assert participant.language == "en"


async def test_start_mid_flow_restarts_registration(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(SMS, ["START", "JA", "Jan", "START"])
    assert texts(transcript[-1]) == [
        catalogue.render("nl", "registration.consent", version="2026-1", url="http://127.0.0.1:8080/privacy")
    ]


async def test_annuleer_cancels_only_the_flow(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["START", "JA", "annuleer", "annuleer"])
    assert texts(transcript[2]) == [catalogue.render("nl", "router.cancelled")]
    assert texts(transcript[3]) == [catalogue.render("nl", "router.nothing_to_cancel")]
    assert rows(sessions, ConversationState) == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.opted_out is False


@pytest.mark.parametrize("word", ["laat maar", "stop maar", "Annuleren", "never mind"])
async def test_cancel_words_end_only_the_flow(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, word: str
) -> None:
    transcript = await converse(SMS, ["START", "jep", "Jan", word])
    assert texts(transcript[-1]) == [catalogue.render("nl", "router.cancelled")]
    assert rows(sessions, ConversationState) == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.opted_out is False


async def test_stop_maar_with_nothing_open_asks_before_unsubscribing(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "stop maar", "nee hoor"])
    assert texts(transcript[-2]) == [catalogue.render("nl", "unsubscribe.confirm")]
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.kept")]
    assert len(rows(sessions, Participant)) == 1


async def test_stop_maar_to_the_unsubscribe_question_unsubscribes(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "ik wil me afmelden", "stop maar"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.stopped")]
    assert [p.status.value for p in rows(sessions, Participant)] != ["active"]


async def test_laat_maar_with_nothing_open_has_nothing_to_cancel(
    converse: Converse, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["laat maar"])
    assert texts(transcript[0]) == [catalogue.render("nl", "router.nothing_to_cancel")]


async def test_a_silent_flow_expires_after_30_minutes(
    converse: Converse, clock: FixedClock, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await converse(SMS, ["START", "JA"])
    clock.advance(minutes=31)
    transcript = await converse(SMS, ["Jan"])
    assert texts(transcript[0])[0] == catalogue.render("nl", "router.expired")
    assert rows(sessions, ConversationState) == []


async def test_a_flow_within_30_minutes_goes_on(
    converse: Converse, clock: FixedClock, catalogue: Catalogue
) -> None:
    await converse(SMS, ["START", "JA"])
    clock.advance(minutes=29)
    transcript = await converse(SMS, ["Jan"])
    assert texts(transcript[0]) == [catalogue.render("nl", "address.ask_home")]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "fallback.empty"),
        ("   ", "fallback.empty"),
        ("🙂🙂🙂", "fallback.unregistered"),
        ("x" * 5000, "fallback.unregistered"),
        ("مرحبا كيف حالك", "fallback.unregistered"),
        ("你好，我需要帮助", "fallback.unregistered"),
        ("'; DROP TABLE participant; --", "fallback.unregistered"),
        ("<script>alert('x')</script>", "fallback.unregistered"),
        ("\x00\x07\u202e", "fallback.empty"),
        ("ja", "router.nothing_pending"),
        ("nee", "router.nothing_pending"),
        ("hallo", "greet.unregistered"),
        ("hoe werkt dit?", "help.unregistered"),
        ("ik zag een man rennen", "router.no_action_for_tip"),
    ],
    ids=[
        "empty",
        "spaces",
        "emoji",
        "5000",
        "arabic",
        "chinese",
        "sql",
        "html",
        "control",
        "ja",
        "nee",
        "hallo",
        "question",
        "tip",
    ],
)
@pytest.mark.parametrize("lang", ["nl", "en"])
async def test_anything_outside_a_flow_gets_an_answer_in_the_persons_language(
    converse: Converse, catalogue: Catalogue, sessions: SessionFactory, text: str, key: str, lang: str
) -> None:
    before = ["ENGLISH"] if lang == "en" else []
    transcript = await converse(SMS, [*before, text])
    assert texts(transcript[-1]) == [catalogue.render(lang, key)]
    assert rows(sessions, Participant) == []


async def test_registered_fallback_points_to_participant_options(
    converse: Converse, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "wat?! 🤔"])
    assert last(transcript).text == catalogue.render("nl", "fallback.registered")


async def test_free_text_intents_start_flows(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(SMS, ["ik wil me aanmelden"])
    assert last(transcript).text == catalogue.render(
        "nl", "registration.consent", version="2026-1", url="http://127.0.0.1:8080/privacy"
    )


async def test_every_reply_of_a_full_sms_session_fits_two_segments(converse: Converse) -> None:
    session = [
        *register_steps(SMS),
        "HULP",
        "ADRES",
        "TOEVOEGEN",
        "1012 AB 5",
        "JA",
        "ma-vr 09:00-17:00",
        "hoi",
        "x" * 5000,
        "ik wil me afmelden",
        "NEE",
        "STOP",
        "START",
    ]
    transcript = await converse(SMS, session)
    for turn in transcript:
        for reply in turn:
            assert count_segments(reply.text).segments <= 2, reply.text


class BrokenParser:
    """An NLU that is down."""

    async def parse(self, text: str) -> ParseResult:
        raise ConnectionError("rasa is down")


async def test_a_broken_parser_falls_back_to_not_understood(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: Settings,
    clock: FixedClock,
) -> None:
    router = ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=BrokenParser(),
        catalogue=catalogue,
        settings=settings,
        clock=clock,
    )
    replies = await router.handle(incoming(SMS, "ik wil iets", clock))
    assert [r.text for r in replies] == [catalogue.render("nl", "fallback.unregistered")]
    # keywords and flows do not need the parser at all
    replies = await router.handle(incoming(SMS, "START", clock))
    assert replies[0].text == catalogue.render(
        "nl", "registration.consent", version="2026-1", url="http://127.0.0.1:8080/privacy"
    )


class ExplodingStep(StrEnum):
    """The one step of the exploding flow."""

    ASK = "ask"


class ExplodingFlow(Flow):
    """A flow whose step writes to the database and then fails, as a bug would."""

    name = "exploding"
    intents = ("greet",)

    def steps(self) -> Mapping[str, Step]:
        return {ExplodingStep.ASK: Step(lambda ctx: ctx.reply("ask"), self.explode)}

    def begin(self, ctx: FlowContext) -> Transition:
        return Goto(ExplodingStep.ASK)

    def explode(self, ctx: FlowContext) -> Transition:
        audit(ctx.session, now=ctx.now, actor="test", event="half_written")
        ctx.identity.language = "en"
        raise RuntimeError("disk on fire")


async def test_a_failing_step_writes_nothing_and_apologises(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: Settings,
    clock: FixedClock,
) -> None:
    router = ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=KeywordParser(),
        catalogue=catalogue,
        settings=settings,
        clock=clock,
        flows=[ExplodingFlow()],
    )
    assert [r.text for r in await router.handle(incoming(SMS, "hallo", clock))] == ["ask"]
    replies = await router.handle(incoming(SMS, "boom", clock))
    assert [r.text for r in replies] == [catalogue.render("nl", "router.error")]
    assert [e.event for e in rows(sessions, AuditEvent)] == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.language == "nl"
    [state] = rows(sessions, ConversationState)
    assert (state.flow, state.step, state.version) == ("exploding", "ask", 1)


async def test_replies_go_to_the_sender_on_its_channel(converse: Converse) -> None:
    transcript = await converse(WHATSAPP, ["HELP"])
    [reply] = transcript[0]
    assert (reply.channel, reply.recipient) == (ChannelKind.WHATSAPP, WHATSAPP.sender)


async def test_group_chatter_gets_no_reply(router: ConversationRouter, clock: FixedClock) -> None:
    message = incoming(TELEGRAM, "hallo allemaal", clock, group_id="-100123")
    assert await router.handle(message) == []


async def test_five_wrong_answers_in_a_row_end_the_conversation(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["START", *["ik rij nu, ik bel u later"] * 6])
    assert [t[0].text for t in transcript[1:6]] == [catalogue.render("nl", "registration.consent_retry")] * 5
    assert texts(transcript[6]) == [catalogue.render("nl", "router.too_many_retries")]
    assert rows(sessions, ConversationState) == []


async def test_a_good_answer_resets_the_count_of_wrong_ones(
    converse: Converse, sessions: SessionFactory
) -> None:
    await converse(SMS, ["START", *["?"] * 4, "JA", *["🙂"] * 4])
    [state] = rows(sessions, ConversationState)
    assert (state.step, state.data["_retries"]) == ("name", 4)


async def test_an_unreachable_database_raises_so_the_provider_retries(
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: Settings,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    # A database file in a folder that does not exist cannot be opened: sqlite raises OperationalError.
    engine = make_engine(f"sqlite:///{tmp_path / 'missing.db'}")
    (tmp_path / "missing.db").mkdir()
    router = ConversationRouter(
        sessions=session_factory(engine), vault=vault, book=book, parser=KeywordParser(), catalogue=catalogue,
        settings=settings, clock=clock,
    )  # fmt: skip
    with pytest.raises(StorageUnavailable):
        await router.handle(incoming(SMS, "START", clock))
    engine.dispose()


async def test_a_photo_without_text_outside_an_action_is_not_called_empty(
    router: ConversationRouter, clock: FixedClock, catalogue: Catalogue
) -> None:
    replies = await router.handle(incoming(TELEGRAM, "", clock, media=("https://files.example/photo.jpg",)))
    assert [r.text for r in replies] == [catalogue.render("nl", "fallback.unregistered")]
