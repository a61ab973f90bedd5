"""The tip flow through the router: every linking rule, the one follow-up, extensions, photos, locations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.conversations import ConversationRouter
from bot.texts import Catalogue
from storage.actions import close_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionOutcome
from storage.vocabulary import ChannelKind, GeoPoint
from tests.conftest import FixedClock
from tests.tips.conftest import alert_id, forwards, launch, message, person, say, stored_tips


def nl(catalogue: Catalogue, key: str, **params: object) -> str:
    return catalogue.render("nl", key, **params)


COMPLETE = "Ik zag hem om 15:10 bij de Jumbo, hij liep richting station"


@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(lambda code: f"{code} {COMPLETE}", id="code-first"),
        pytest.param(lambda code: f"{COMPLETE} ({code.lower()})", id="lower-case"),
        pytest.param(lambda code: f"{COMPLETE} {code.replace('-', '')}", id="no-dash"),
        pytest.param(lambda code: f"{COMPLETE} {code.replace('-', ' ')}", id="space"),
    ],
)
async def test_a_code_anywhere_links_an_unregistered_sender(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
    spell,
) -> None:
    stranger = person(sessions, vault, clock(), registered=False)
    action = launch(sessions, clock())
    [replies] = await say(router, stranger, clock, spell(action.code))
    assert replies == [nl(catalogue, "tip.thanks", code=action.code)]
    [tip] = stored_tips(sessions)
    assert (tip.action_id, tip.participant_id, tip.identity_id) == (action.id, None, stranger.identity_id)
    assert tip.reporter.startswith("R-") and stranger.sender not in tip.reporter
    assert tip.seen_at is not None and tip.seen_at.replace(tzinfo=UTC) == datetime(
        2026, 11, 20, 14, 10, tzinfo=UTC
    )
    assert (tip.location_text, tip.direction) == ("Jumbo", "station")
    assert vault.decrypt(tip.phone_enc or "") == stranger.sender
    [forward] = forwards(sessions)
    assert forward.event == "tip.created" and forward.payload["action_code"] == action.code
    assert forward.webhook_state == "skipped"  # no CONTROLROOM_WEBHOOK_URL in these settings


async def test_telegram_deep_link_starts_a_tip_and_asks_where_and_when(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    relay_member = person(sessions, vault, clock(), ChannelKind.TELEGRAM, registered=False)
    action = launch(sessions, clock())
    start = message(relay_member, f"/start {action.code}", clock, start_payload=action.code)
    turns = await say(router, relay_member, clock, start, "Bij het station, een kwartier geleden")
    assert turns == [
        [nl(catalogue, "tip.followup_both", code=action.code)],
        [nl(catalogue, "tip.thanks_after_followup", code=action.code)],
    ]
    [tip] = stored_tips(sessions)
    assert tip.text == "Bij het station, een kwartier geleden"
    assert tip.location_text == "station" and tip.seen_at is not None
    assert tip.phone_enc is None  # an unregistered Telegram chat has no number
    assert [f.event for f in forwards(sessions)] == ["tip.created", "tip.updated"]


@pytest.mark.parametrize(
    "channel",
    [
        pytest.param(ChannelKind.WHATSAPP, id="whatsapp-quoted-reply"),
        pytest.param(ChannelKind.TELEGRAM, id="telegram-reply"),
        pytest.param(ChannelKind.VOICE, id="spoken-in-the-alert-call"),
    ],
)
async def test_a_reply_to_the_alert_links_it(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    channel: ChannelKind,
) -> None:  # fmt: skip
    sanne = person(sessions, vault, clock(), channel)
    older = launch(sessions, clock(), sanne, headline="Overval op juwelier")
    launch(sessions, clock(), sanne)
    reply = message(sanne, COMPLETE, clock, reply_to_provider_id=alert_id(older, sanne))
    [replies] = await say(router, sanne, clock, reply)
    # In a call the thanks is written to be heard: no action code spelled out letter by letter.
    key = "tip.thanks_call" if channel is ChannelKind.VOICE else "tip.thanks"
    assert replies == [nl(catalogue, key, code=older.code)]
    if channel is ChannelKind.VOICE:
        assert older.code not in replies[0] and "1 1 2" in replies[0]
    assert [t.action_id for t in stored_tips(sessions)] == [older.id]


async def test_telegram_reply_ids_repeat_across_chats_so_the_chat_must_match(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    anna, bram = (person(sessions, vault, clock(), ChannelKind.TELEGRAM) for _ in range(2))
    first = launch(sessions, clock(), anna)
    second = launch(sessions, clock(), bram)
    # Bram replies to message id 1000+first.id in his own chat: that is not Anna's alert.
    reply = message(bram, COMPLETE, clock, reply_to_provider_id=alert_id(first, anna))
    await say(router, bram, clock, reply)
    assert [t.action_id for t in stored_tips(sessions)] == [second.id]


async def test_a_tip_from_a_recipient_of_one_running_action(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    [replies] = await say(router, jan, clock, COMPLETE)
    assert replies == [nl(catalogue, "tip.thanks", code=action.code)]
    [tip] = stored_tips(sessions)
    assert tip.participant_id == jan.participant_id and tip.intent == "give_tip"


async def test_a_participants_tip_that_holds_a_postcode_is_a_tip(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    text = "ik zag hem om 15:10 bij 7511 AB 12 hij liep richting station"
    [replies] = await say(router, jan, clock, text)
    assert replies == [nl(catalogue, "tip.thanks", code=action.code)]
    [tip] = stored_tips(sessions)
    assert tip.text == text


@pytest.mark.parametrize("answer", ["number", "button"])
async def test_several_running_actions_ask_which(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    answer: str,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock())
    first = launch(sessions, clock(), jan, headline="Overval op juwelier")
    clock.advance(minutes=1)
    second = launch(sessions, clock(), jan, headline="Vermist: Noah (8)")
    # The buttons carry the codes: pressing one answers the question, it does not start a new tip.
    turns = await say(router, jan, clock, COMPLETE, "drie", "2" if answer == "number" else first.code)
    options = "\n".join(
        nl(catalogue, "tip.choice_line", n=n, code=a.code, headline=a.headline)
        for n, a in enumerate([second, first], 1)
    )
    assert turns[0] == [nl(catalogue, "tip.which_action", options=options)]
    assert turns[1] == [nl(catalogue, "tip.which_retry", count=2, code=second.code)]
    assert turns[2] == [nl(catalogue, "tip.thanks", code=first.code)]
    [tip] = stored_tips(sessions)
    assert tip.action_id == first.id and tip.text == COMPLETE


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param("no_action", id="no-action-running"),
        pytest.param("not_received", id="alert-not-received"),
        pytest.param("closed_long_ago", id="action-closed-a-day-ago"),
    ],
)
async def test_no_linkable_action_answers_politely(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
    setup: str,
) -> None:
    jan = person(sessions, vault, clock())
    other = person(sessions, vault, clock())
    if setup != "no_action":
        action = launch(sessions, clock(), jan if setup != "not_received" else other)
        if setup == "closed_long_ago":
            close(sessions, action, clock(), ActionOutcome.FOUND)
            clock.advance(hours=25)
    [replies] = await say(router, jan, clock, COMPLETE)
    assert replies == [nl(catalogue, "router.no_action_for_tip")]
    assert stored_tips(sessions) == []


def close(sessions: SessionFactory, action: Action, now: datetime, outcome: ActionOutcome | None) -> None:
    """End the action as the control room does (or, without an outcome, as its end time passing does)."""
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        if outcome is None:
            stored.expires_at = now
            session.add(stored)
        else:
            close_action(session, action=stored, outcome=outcome, closing_text="", now=now)


def late_reply(catalogue: Catalogue, action: Action, outcome: ActionOutcome | None) -> str:
    if outcome is None:
        return nl(catalogue, "tip.late", code=action.code)
    label = nl(catalogue, f"action.outcome.{outcome.value}")
    return nl(catalogue, "tip.late_outcome", code=action.code, outcome=label)


@pytest.mark.parametrize(
    "outcome",
    [
        pytest.param(ActionOutcome.FOUND, id="found"),
        pytest.param(ActionOutcome.CANCELLED, id="cancelled"),
        pytest.param(None, id="end-time-passed"),
    ],
)
async def test_a_message_right_after_close_is_late_not_added_to_the_tip(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    outcome: ActionOutcome | None,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, COMPLETE)
    clock.advance(minutes=2)
    close(sessions, action, clock(), outcome)
    clock.advance(minutes=1)
    turns = await say(router, jan, clock, "hij liep nog richting de brug", "en had een pet op")
    assert turns == [[late_reply(catalogue, action, outcome)]] * 2
    live, late = stored_tips(sessions)
    assert (live.text, live.messages, live.late) == (COMPLETE, 1, False)
    assert (late.action_id, late.late, late.messages) == (action.id, True, 2)
    assert late.text == "hij liep nog richting de brug\nen had een pet op"
    assert [f.payload["late"] for f in forwards(sessions)] == [False, True, True]


async def test_late_messages_do_not_keep_the_window_open(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, COMPLETE)
    close(sessions, action, clock(), ActionOutcome.FOUND)
    clock.advance(minutes=3)
    # Not a tip by its words: only the window after the live tip links it, and a late one must not move it.
    turns = await say(router, jan, clock, "en had een pet op")
    clock.advance(minutes=3)
    turns += await say(router, jan, clock, "en een rode jas")
    assert turns[0] == [late_reply(catalogue, action, ActionOutcome.FOUND)]
    assert turns[1] == [nl(catalogue, "fallback.registered")]
    live, late = stored_tips(sessions)
    assert (live.messages, late.late, late.text) == (1, True, "en had een pet op")


@pytest.mark.parametrize(
    "via",
    [
        pytest.param("code", id="code-in-text"),
        pytest.param("reply", id="reply-to-the-alert"),
        pytest.param("nlu", id="tip-from-a-recipient"),
    ],
)
async def test_a_tip_on_an_ended_action_is_kept_as_late(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    via: str,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock(), ChannelKind.WHATSAPP)
    action = launch(sessions, clock(), jan)
    close(sessions, action, clock(), ActionOutcome.ARRESTED)
    clock.advance(hours=2)
    text = f"{action.code} ik zag iets" if via == "code" else COMPLETE
    reply_to = alert_id(action, jan) if via == "reply" else None
    [replies] = await say(router, jan, clock, message(jan, text, clock, reply_to_provider_id=reply_to))
    assert replies == [late_reply(catalogue, action, ActionOutcome.ARRESTED)]
    [tip] = stored_tips(sessions)
    assert tip.late and tip.action_id == action.id and not tip.followup_asked


async def test_photo_from_telegram_payload(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    from tests.tips.payloads import telegram_incoming

    anna = person(sessions, vault, clock(), ChannelKind.TELEGRAM)
    action = launch(sessions, clock(), anna)
    photo = telegram_incoming("photo.json", sender=anna.sender, received_at=clock())
    assert photo.media and photo.text
    [replies] = await say(router, anna, clock, photo)
    # "Deze auto stond hier net": when is known (just now), where is not.
    assert replies == [nl(catalogue, "tip.followup_where", code=action.code)]
    [tip] = stored_tips(sessions)
    assert tip.media == list(photo.media) and "auto" in (tip.description or "")


async def test_bare_photo_without_text_from_a_recipient(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    anna = person(sessions, vault, clock(), ChannelKind.TELEGRAM)
    action = launch(sessions, clock(), anna)
    [replies] = await say(router, anna, clock, message(anna, "", clock, media=("AgACAgQfile",)))
    assert replies == [nl(catalogue, "tip.followup_both", code=action.code)]
    assert stored_tips(sessions)[0].media == ["AgACAgQfile"]


async def test_whatsapp_location_then_photo(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    from tests.tips.payloads import whatsapp_incoming

    sanne = person(sessions, vault, clock(), ChannelKind.WHATSAPP)
    action = launch(sessions, clock(), sanne)
    location = whatsapp_incoming("whatsapp_location.json", sender=sanne.sender, received_at=clock())
    media = whatsapp_incoming("whatsapp_media.json", sender=sanne.sender, received_at=clock())
    assert location.location == GeoPoint(52.2215, 6.8937)
    turns = await say(router, sanne, clock, location, "net, 5 minuten geleden", media)
    assert turns[0] == [nl(catalogue, "tip.followup_when", code=action.code)]
    assert turns[1] == [nl(catalogue, "tip.thanks_after_followup", code=action.code)]
    assert turns[2] == [nl(catalogue, "tip.added", code=action.code)]
    [tip] = stored_tips(sessions)
    assert (tip.lat, tip.lon) == (52.2215, 6.8937) and tip.seen_at is not None
    assert tip.media == list(media.media) and tip.messages == 3
    assert [f.event for f in forwards(sessions)] == ["tip.created", "tip.updated", "tip.updated"]


async def test_a_second_message_within_minutes_extends_the_tip_later_ones_do_not(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    turns = await say(router, jan, clock, COMPLETE, "Hij had een rode rugzak", "HULP", "ik wil me afmelden")
    assert turns[1] == [nl(catalogue, "tip.added", code=action.code)]
    assert turns[2] == [nl(catalogue, "help.registered")]  # a keyword is never swallowed by a tip
    assert turns[3] == [nl(catalogue, "unsubscribe.confirm")]  # nor a plain wish to leave
    await say(router, jan, clock, "NEE")
    clock.advance(minutes=6)
    await say(router, jan, clock, "Ik zag hem weer, nu bij de Albert Heijn om 15:40")
    first, second = stored_tips(sessions)
    assert first.text == f"{COMPLETE}\nHij had een rode rugzak" and "rode rugzak" in (first.description or "")
    assert second.location_text == "Albert Heijn"


async def test_tips_in_english(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    anna = person(sessions, vault, clock(), ChannelKind.TELEGRAM, language="en")
    action = launch(sessions, clock(), anna)
    turns = await say(
        router, anna, clock, f"{action.code} saw a boy in a blue jacket", "near the station at 15:20"
    )
    assert turns == [
        [catalogue.render("en", "tip.followup_both", code=action.code)],
        [catalogue.render("en", "tip.thanks_after_followup", code=action.code)],
    ]
    [tip] = stored_tips(sessions)
    assert tip.language == "en" and tip.location_text == "station" and tip.seen_at is not None


async def test_a_follow_up_answer_that_repeats_the_code_joins_the_same_tip(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    turns = await say(
        router, jan, clock, f"{action.code} zag een jongen", f"{action.code} bij de Jumbo, om 15:10"
    )
    assert turns[1] == [nl(catalogue, "tip.thanks_after_followup", code=action.code)]
    [tip] = stored_tips(sessions)
    assert tip.location_text == "Jumbo" and tip.seen_at is not None and tip.messages == 2


TELEGRAM_PAYLOADS = [
    pytest.param("photo.json", "tip.followup_where", {"media": 1, "lat": None}, id="photo-with-caption"),
    pytest.param("location.json", "tip.followup_when", {"media": 0, "lat": 52.255851}, id="shared-location"),
    pytest.param("start_payload.json", "tip.followup_both", {"media": 0, "lat": None}, id="deep-link"),
]


@pytest.mark.parametrize(("name", "question", "expected"), TELEGRAM_PAYLOADS)
async def test_real_telegram_payloads_become_tips(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    name: str, question: str, expected: dict[str, object],
) -> None:  # fmt: skip
    from tests.tips.payloads import telegram_incoming

    # A deep link comes from someone who never got the alert (a relay's group member); the others got it.
    anna = person(sessions, vault, clock(), ChannelKind.TELEGRAM, registered=name != "start_payload.json")
    action = launch(sessions, clock(), *((anna,) if name != "start_payload.json" else ()))
    update = telegram_incoming(name, sender=anna.sender, received_at=clock(), code=action.code)
    [replies] = await say(router, anna, clock, update)
    assert replies == [nl(catalogue, question, code=action.code)]
    [tip] = stored_tips(sessions)
    assert (len(tip.media), tip.lat) == (expected["media"], expected["lat"])
    assert tip.text == ("" if name != "photo.json" else update.text)


async def test_a_day_without_a_time_keeps_its_phrase_and_the_follow_up_asks_when(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    tipster = person(sessions, vault, clock())
    action = launch(sessions, clock())
    [replies] = await say(router, tipster, clock, f"{action.code} gisteren bij de Hema in de Kalanderstraat")
    assert replies == [nl(catalogue, "tip.followup_when", code=action.code)]
    [tip] = stored_tips(sessions)
    assert (tip.seen_at, tip.seen_text) == (None, "gisteren")  # not the receipt time
    assert tip.location_text == "Hema, Kalanderstraat"
    assert forwards(sessions)[0].payload["seen_text"] == "gisteren"


async def test_nu_net_minutes_ago_is_stored_with_its_phrase_and_every_place(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    tipster = person(sessions, vault, clock())
    action = launch(sessions, clock())
    await say(
        router, tipster, clock, f"{action.code} nu net 5 minuten geleden op het bankje bij de Oude Markt"
    )
    [tip] = stored_tips(sessions)
    assert tip.seen_at is not None
    assert tip.seen_at.replace(tzinfo=UTC) == tip.received_at.replace(tzinfo=UTC) - timedelta(minutes=5)
    assert tip.seen_text == "nu net 5 minuten geleden"
    assert (tip.location_text, tip.places) == ("Oude Markt, bankje", ["Oude Markt"])


RECORDING = (
    "https://api.twilio.com/2010-04-01/Accounts/ACa1b2c3d4e5f60718293a4b5c6d7e8f90/Recordings/"
    "RE4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
)


@pytest.mark.parametrize(
    ("transcription", "reply"),
    [
        # Nothing to read where and when from: asked once, and the answer is heard in the same call.
        pytest.param("", "tip.followup_both_call", id="recording-only"),
        pytest.param("Ik zag hem om 15:10 bij de Jumbo", "tip.thanks_call", id="with-transcription"),
    ],
)
async def test_a_tip_recorded_in_the_alert_call_is_linked_to_that_alert(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
    transcription: str,
    reply: str,
) -> None:
    # Pressed 2 after the alert: the recording arrives on the call's sid, which is the alert's delivery id.
    piet = person(sessions, vault, clock(), ChannelKind.VOICE)
    older = launch(sessions, clock(), piet, headline="Overval op juwelier")
    launch(sessions, clock(), piet)
    recorded = message(
        piet, transcription, clock, media=(RECORDING,), reply_to_provider_id=alert_id(older, piet)
    )
    [replies] = await say(router, piet, clock, recorded)
    assert replies == [nl(catalogue, reply, code=older.code)]
    [tip] = stored_tips(sessions)
    assert (tip.action_id, tip.media, tip.text) == (older.id, [RECORDING], transcription)
    assert tip.participant_id == piet.participant_id
