"""The engine's state: compare-and-set on the version, so two workers never both advance a conversation."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from bot.channels.segments import count_segments
from bot.config import Settings
from bot.conversations import ConversationRouter, fold_for_sms
from bot.flows.engine import Answer, StaleState, clear_state, load_state, set_state, yes_or_no
from bot.texts import Catalogue
from nlu.keywords import KeywordParser
from storage.crypto import DataVault
from storage.db import SessionFactory, make_engine, session_factory, transaction
from storage.geo import PostcodeBook
from storage.models import ConversationState
from storage.participants import touch_sender
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.flows.conftest import Converse, Person, incoming, last


def make_identity(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> int:
    with transaction(sessions) as session:
        identity = touch_sender(
            session, vault=vault, channel=ChannelKind.SMS, address="+31612345678", now=clock()
        ).identity
        assert identity.id is not None
        set_state(
            session,
            identity_id=identity.id,
            flow="registration",
            step="name",
            data={},
            now=clock(),
            current=None,
        )
        return identity.id


def test_a_second_writer_with_an_old_version_is_refused(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    identity_id = make_identity(sessions, vault, clock)
    with sessions() as first, sessions() as second:
        mine, theirs = load_state(first, identity_id=identity_id), load_state(second, identity_id=identity_id)
        assert mine is not None and theirs is not None
        set_state(
            first,
            identity_id=identity_id,
            flow="registration",
            step="address",
            data={},
            now=clock(),
            current=mine,
        )
        first.commit()
        with pytest.raises(StaleState):
            set_state(
                second,
                identity_id=identity_id,
                flow="registration",
                step="phone",
                data={},
                now=clock(),
                current=theirs,
            )
        second.rollback()
    with sessions() as session:
        state = load_state(session, identity_id=identity_id)
        assert state is not None and (state.step, state.version) == ("address", 2)


def test_clearing_a_state_someone_else_changed_is_refused(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    identity_id = make_identity(sessions, vault, clock)
    with sessions() as first, sessions() as second:
        mine, theirs = load_state(first, identity_id=identity_id), load_state(second, identity_id=identity_id)
        assert mine is not None and theirs is not None
        set_state(
            first,
            identity_id=identity_id,
            flow="registration",
            step="address",
            data={},
            now=clock(),
            current=mine,
        )
        first.commit()
        with pytest.raises(StaleState):
            clear_state(second, current=theirs)


YES_NO_CASES = [
    ("JA", Answer.YES), ("ja!", Answer.YES), (" Yes ", Answer.YES), ("klopt", Answer.YES), ("👍", Answer.YES),
    ("NEE", Answer.NO), ("no.", Answer.NO), ("klopt niet", Answer.NO), ("", None), ("jaaaaa nee", None),
    ("ja, dat is mijn nummer", Answer.YES), ("Ja hoor dat klopt!", Answer.YES),
    ("nee, verkeerde plaats", Answer.NO),
    ("ja nee", None), ("ja maar niet nu", None), ("nee ja", None), ("yes that's right", Answer.YES),
    ("no, wrong town", Answer.NO), ("ja " * 20, None), ("jammer", None),
    # As people type them: short forms, held letters, politeness, English.
    ("jep", Answer.YES), ("Jawel", Answer.YES), ("klopt.", Answer.YES), ("yes", Answer.YES),
    ("ok", Answer.YES), ("oke", Answer.YES), ("okee", Answer.YES), ("jaaaa", Answer.YES),
    ("jup", Answer.YES), ("yup", Answer.YES),
    ("tuurlijk", Answer.YES), ("ja hoor", Answer.YES), ("jawel dat klopt", Answer.YES), ("yesss", Answer.YES),
    ("dat klopt", Answer.YES), ("is goed", Answer.YES), ("👌", Answer.YES),
    ("nee hoor", Answer.NO), ("liever niet", Answer.NO), ("neeee", Answer.NO), ("nope", Answer.NO),
    ("ne", Answer.NO), ("nee dank je", Answer.NO), ("nooo", Answer.NO), ("dat klopt niet", Answer.NO),
    ("nee hoor dat is fout", Answer.NO),
    # Not safe to take either way.
    ("niet goed", None), ("jep nee", None), ("ok nee", None), ("klopt niet helemaal ja", None),
    ("jan", None), ("nel", None), ("yesterday", None), ("neem contact op", None),
]  # fmt: skip


@pytest.mark.parametrize(("text", "answer"), YES_NO_CASES)
def test_yes_or_no(text: str, answer: Answer | None) -> None:
    assert yes_or_no(text) is answer


def test_sms_texts_fold_to_gsm7() -> None:
    assert fold_for_sms("Is dit Wâlterswâld, gemeente Súdwest-Fryslân? ’t Klopt…") == (
        "Is dit Walterswald, gemeente Sudwest-Fryslan? 't Klopt..."
    )
    assert fold_for_sms("Naam: مريم") == "Naam: مريم"


async def test_frisian_place_names_keep_the_sms_welcome_within_two_parts(converse: Converse) -> None:
    person = Person(ChannelKind.SMS, "+31611112222")
    transcript = await converse(person, ["START", "JA", "-", "8711 AB 1", "JA", "JA", "SMS"])
    assert "Súdwest-Fryslân" not in transcript[3][0].text
    assert "Sudwest-Fryslan" in transcript[3][0].text
    assert count_segments(last(transcript).text).segments <= 2


async def test_two_workers_handle_one_persons_messages_one_after_the_other(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: Settings,
    clock: FixedClock,
    database_url: str,
) -> None:
    # Two routers on their own engines stand for two worker processes sharing the database.
    other_engine = make_engine(database_url)
    routers = [
        ConversationRouter(sessions=factory, vault=vault, book=book, parser=KeywordParser(),
                           catalogue=catalogue, settings=settings, clock=clock)
        for factory in (sessions, session_factory(other_engine))
    ]  # fmt: skip
    person = Person(ChannelKind.SMS, "+31611112222")
    await routers[0].handle(incoming(person, "START", clock))
    await routers[1].handle(incoming(person, "JA", clock))
    first, second = await asyncio.gather(
        routers[0].handle(incoming(person, "Jan", clock)), routers[1].handle(incoming(person, "Piet", clock))
    )
    other_engine.dispose()
    answers = sorted([first[0].text, second[0].text])
    # One of them was the name; the other then arrived at the address step and was explained there.
    assert answers == sorted(
        [catalogue.render("nl", "address.ask_home"), catalogue.render("nl", "address.bad_format")]
    )
    with sessions() as session:
        [state] = session.exec(select(ConversationState)).all()
        assert (state.step, state.version) == ("address", 4)
