"""Relayed alerts: an action reaches the relays in its area with a forward-ready text and a tip link."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.channels.segments import count_segments
from bot.config import Settings
from bot.texts import Catalogue
from storage.actions import delivery_counts, normalise_code
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Delivery, DeliveryKind, Relay, RelayPlatform
from storage.relays import relay_figures, relay_ref
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.actions.conftest import ENSCHEDE, seed_person
from tests.conftest import FixedClock
from tests.flows.conftest import SMS_PHONE, WHATSAPP_PHONE
from tests.relays.conftest import GROUP_CHAT, Chat, close, dispatcher, launch

WA = ChannelKind.WHATSAPP
ENSCHEDE_3KM = {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}}
LINK = "https://"


async def register(
    chat: Chat, area: list[str], *, channel: ChannelKind = WA, sender: str = WHATSAPP_PHONE
) -> None:
    """A coordinator registers a WhatsApp group with 80 members for an area (postcodes or ROND MIJN ADRES)."""
    await chat.say(
        channel, sender, ["BUURTAPP", "JA", "Buurtpreventie Roombeek", "WhatsApp", *area, "80", "JA"]
    )


def relay_ids(sessions: SessionFactory) -> list[int]:
    with sessions() as session:
        return [r.id for r in session.exec(select(Relay)) if r.id is not None]


def link_in(text: str) -> str:
    return next(word for word in text.split() if word.startswith(LINK))


async def test_an_action_in_enschede_reaches_the_7511_group_ready_to_forward(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    await register(chat, ["7511"])
    neighbour = seed_person(sessions, vault, clock(), channels=[ChannelKind.TELEGRAM])
    action = launch(sessions, clock)
    outbox, fake = dispatcher(sessions, vault, settings, texts, clock)
    await outbox.drain()

    [to_relay] = [m for m in fake.sent if m.recipient == WHATSAPP_PHONE]
    assert to_relay.channel is WA and to_relay.template_sid is None  # the coordinator wrote just now
    assert neighbour.addresses[ChannelKind.TELEGRAM] in fake.recipients()
    for part in (action.code, action.headline, action.description, "112", "politie"):
        assert part in to_relay.text
    link = urlparse(link_in(to_relay.text))
    assert (link.scheme, link.netloc, link.path) == ("https", "wa.me", "/3197010203040")
    prefilled = parse_qs(link.query)["text"][0]
    [relay_id] = relay_ids(sessions)
    assert prefilled == f"TIP {action.code} R{relay_id}"
    assert normalise_code(prefilled) == action.code and relay_ref(prefilled) == relay_id
    assert to_relay.text.endswith(unquote(link.geturl()).replace(" ", "%20"))


async def test_a_telegram_group_gets_the_alert_posted_by_the_bot(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
) -> None:
    await chat.in_group(["/buurtapp", "ja", "7511", "45"])
    action = launch(sessions, clock)
    outbox, fake = dispatcher(sessions, vault, settings, texts, clock)
    await outbox.drain()

    [posted] = fake.sent
    assert (posted.channel, posted.recipient) == (ChannelKind.TELEGRAM, GROUP_CHAT)
    link = urlparse(link_in(posted.text))
    assert (link.netloc, link.path) == ("t.me", "/BurgernetTestBot")
    [relay_id] = relay_ids(sessions)
    start = parse_qs(link.query)["start"][0]
    assert start == f"{action.code}_R{relay_id}"
    assert normalise_code(start) == action.code and relay_ref(start) == relay_id
    with sessions() as session:
        [row] = session.exec(select(Delivery).where(Delivery.kind == DeliveryKind.RELAY_ALERT)).all()
        # The Telegram message id is kept: a reply to the post in the group names it (reply_to_provider_id).
        assert row.status is DeliveryStatus.SENT and row.provider_id is not None and row.relay_id == relay_id


# (what the coordinator answers for the area, the action's area, whether the relay is reached)
AREAS: dict[str, tuple[list[str], dict[str, Any], bool]] = {
    "pc4-inside-circle": (["7511"], ENSCHEDE_3KM, True),
    "one-of-several-pc4-inside": (["1012 7545"], ENSCHEDE_3KM, True),
    "pc4-far-away": (["1012"], ENSCHEDE_3KM, False),
    "pc4-just-outside": (["7547"], ENSCHEDE_3KM, False),
    "pc4-in-municipality": (["7511"], {"municipalities": ["0153"]}, True),
    "pc4-other-municipality": (["1012"], {"municipalities": ["0153"]}, False),
    "circles-overlap": (["ROND MIJN ADRES", "7547 AA 1", "1"], ENSCHEDE_3KM, True),
    "circles-apart": (["ROND MIJN ADRES", "1012 AB 5", "5"], ENSCHEDE_3KM, False),
    "circle-in-municipality": (["ROND MIJN ADRES", "7522 NB 1", "2"], {"municipalities": ["0153"]}, True),
    "circle-other-municipality": (["ROND MIJN ADRES", "1012 AB 5", "2"], {"municipalities": ["0153"]}, False),
}


@pytest.mark.parametrize(("answers", "area", "reached"), AREAS.values(), ids=AREAS.keys())
async def test_only_relays_whose_area_touches_the_action_get_it(
    chat: Chat,
    sessions: SessionFactory,
    clock: FixedClock,
    answers: list[str],
    area: dict[str, Any],
    reached: bool,
) -> None:
    await register(chat, answers)
    assert len(relay_ids(sessions)) == 1
    action = launch(sessions, clock, area=area)
    with sessions() as session:
        counts = delivery_counts(session, action_id=action.id or 0)
    assert counts.total(DeliveryKind.RELAY_ALERT) == (1 if reached else 0)


async def test_closing_reaches_the_relays_that_got_the_alert(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
) -> None:
    await register(chat, ["7511"])
    await register(chat, ["1012"], channel=ChannelKind.SMS, sender=SMS_PHONE)
    await chat.in_group(["/buurtapp", "ja", "7511", "45"])
    neighbour = seed_person(sessions, vault, clock()).addresses[ChannelKind.TELEGRAM]
    action = launch(sessions, clock)
    outbox, fake = dispatcher(sessions, vault, settings, texts, clock)
    await outbox.drain()
    fake.sent.clear()

    participants = close(sessions, clock, action.id or 0)
    await outbox.drain()

    assert participants == 1  # the relays are counted apart
    closings = {m.recipient: m for m in fake.sent if "Tim is gevonden" in m.text}
    assert set(closings) == {WHATSAPP_PHONE, GROUP_CHAT, neighbour}
    assert SMS_PHONE not in fake.recipients()
    assert "groep" in closings[GROUP_CHAT].text and LINK not in closings[GROUP_CHAT].text
    with sessions() as session:
        counts = delivery_counts(session, action_id=action.id or 0)
    assert (counts.total(DeliveryKind.RELAY_CLOSING), counts.total(DeliveryKind.CLOSING)) == (2, 1)


async def test_a_relay_alert_still_queued_at_closing_is_stopped_and_gets_no_closing(
    chat: Chat, sessions: SessionFactory, clock: FixedClock
) -> None:
    await register(chat, ["7511"])
    action = launch(sessions, clock)
    close(sessions, clock, action.id or 0)
    with sessions() as session:
        counts = delivery_counts(session, action_id=action.id or 0)
    assert counts.by_status(DeliveryKind.RELAY_ALERT) == {"failed": 1}
    assert counts.total(DeliveryKind.RELAY_CLOSING) == 0


STOPPERS = {
    "whatsapp-coordinator": (WA, WHATSAPP_PHONE, ["STOP"]),
    "telegram-group-admin-privately": (ChannelKind.TELEGRAM, "777001", ["STOP"]),
    "telegram-group-admin-in-the-group": (ChannelKind.TELEGRAM, "group", ["/stop"]),
}


@pytest.mark.parametrize(("channel", "sender", "messages"), STOPPERS.values(), ids=STOPPERS.keys())
async def test_stop_erases_the_coordinators_relays(
    chat: Chat,
    sessions: SessionFactory,
    clock: FixedClock,
    channel: ChannelKind,
    sender: str,
    messages: list[str],
) -> None:
    await register(chat, ["7511"])
    await chat.in_group(["/buurtapp", "ja", "7511", "45"])
    first = launch(sessions, clock)
    if sender == "group":
        await chat.in_group(messages)
    else:
        await chat.say(channel, sender, messages)

    assert len(relay_ids(sessions)) == 1
    second = launch(sessions, clock)
    with sessions() as session:
        assert delivery_counts(session, action_id=second.id or 0).total(DeliveryKind.RELAY_ALERT) == 1
        # The first action's deliveries stay as counts, no longer tied to the erased relay.
        rows = session.exec(select(Delivery).where(Delivery.action_id == first.id)).all()
        assert len(rows) == 2 and sum(r.relay_id is None for r in rows) == 1


async def test_the_figures_count_relays_and_their_members(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
) -> None:
    await register(chat, ["7511"])
    await chat.in_group(["/buurtapp", "ja", "7511", "45"])
    await register(chat, ["1012"], channel=ChannelKind.SMS, sender=SMS_PHONE)
    action = launch(sessions, clock)
    with sessions() as session:
        queued = relay_figures(session, action_id=action.id or 0)
    assert (queued.relays, queued.estimated_members) == (2, 0)  # nothing is out yet

    outbox, _ = dispatcher(sessions, vault, settings, texts, clock)
    await outbox.drain()
    close(sessions, clock, action.id or 0)
    with sessions() as session:
        figures = relay_figures(session, action_id=action.id or 0)
    assert figures.as_json() == {
        "relays": 2,
        "estimated_members": 125,
        "by_status": {"sent": 2},
        "closings": 2,
        "tips": 0,
    }


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("platform", list(RelayPlatform), ids=[p.value for p in RelayPlatform])
def test_a_relayed_sms_fits_two_parts_with_its_link(
    texts: AlertTexts, clock: FixedClock, platform: RelayPlatform, lang: str
) -> None:
    from bot.alerts import RelayRef
    from storage.models import Action, ActionType

    action = Action(
        code="BN-4K7P",
        type=ActionType.ROBBERY,
        headline="Overval op juwelier aan de Oude Markt, twee daders op een scooter " * 2,
        description="Een man van ongeveer 40 jaar met een grijze baard en een rode rugzak, " * 6,
        area={},
        created_at=clock(),
        expires_at=clock(),
    )
    sms = texts.text(
        action, kind=DeliveryKind.RELAY_ALERT, channel=ChannelKind.SMS, lang=lang, relay=RelayRef(9, platform)
    )
    assert count_segments(sms).segments <= 2
    assert "BN-4K7P" in sms and "R9" in sms and LINK in sms


# (our WhatsApp number, our bot, the group's platform) → the hosts of the links in the text
LINKS = {
    "whatsapp-group": ("+3197010203040", "Bot", RelayPlatform.WHATSAPP, ["wa.me"]),
    "telegram-group": ("+3197010203040", "Bot", RelayPlatform.TELEGRAM, ["t.me"]),
    "other-group-both": ("+3197010203040", "Bot", RelayPlatform.OTHER, ["wa.me", "t.me"]),
    "no-whatsapp-number": (None, "Bot", RelayPlatform.WHATSAPP, ["t.me"]),
    "no-link-bases": (None, None, RelayPlatform.WHATSAPP, []),
}


@pytest.mark.parametrize(("number", "bot", "platform", "hosts"), LINKS.values(), ids=LINKS.keys())
def test_the_link_fits_the_groups_app(
    catalogue: Catalogue,
    clock: FixedClock,
    number: str | None,
    bot: str | None,
    platform: RelayPlatform,
    hosts: list[str],
) -> None:
    from bot.alerts import RelayRef
    from storage.models import Action, ActionType

    texts = AlertTexts(catalogue, whatsapp_number=number, telegram_bot=bot)
    action = Action(
        code="BN-4K7P", type=ActionType.OTHER, headline="Kop", area={}, created_at=clock(), expires_at=clock()
    )
    text = texts.text(
        action, kind=DeliveryKind.RELAY_ALERT, channel=WA, lang="nl", relay=RelayRef(3, platform)
    )
    assert [urlparse(w).netloc for w in text.split() if w.startswith(LINK)] == hosts


# (a tip's text) → the relay it names
RELAY_REFS = {
    "whatsapp-prefilled": ("TIP BN-K3AH R7", 7),
    "telegram-start": ("/start BN-K3AH_R12", 12),
    "lower-case-with-tip": ("tip bn k3ah r7 ik zag hem bij de Jumbo", 7),
    "no-relay": ("TIP BN-K3AH", None),
    "a-car-model-is-no-relay": ("BN-K3AH een Renault R5 reed weg", None),
    "no-code": ("R7", None),
}


@pytest.mark.parametrize(("text", "relay"), RELAY_REFS.values(), ids=RELAY_REFS.keys())
def test_the_relay_a_tip_came_through(text: str, relay: int | None) -> None:
    assert relay_ref(text) == relay


# (the relay template configured) → the template the coordinator gets, and whether it carries the link
TEMPLATES = {
    "relay-template": ("HX_relay", "HX_relay", True),
    "no-relay-template": (None, "HX_missing", False),
}


@pytest.mark.parametrize(("configured", "used", "linked"), TEMPLATES.values(), ids=TEMPLATES.keys())
async def test_outside_the_whatsapp_window_the_coordinator_gets_a_template(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
    configured: str | None,
    used: str,
    linked: bool,
) -> None:
    await register(chat, ["7511"])
    clock.advance(hours=25)
    action = launch(sessions, clock)
    outbox, fake = dispatcher(
        sessions, vault, settings.model_copy(update={"whatsapp_template_relay": configured}), texts, clock
    )
    await outbox.drain()

    [sent] = fake.sent
    assert sent.template_sid == used and sent.template_variables is not None
    assert sent.template_variables["1"] == action.code
    link = sent.template_variables.get("5")
    assert (link is not None) is linked
    if link is not None:
        prefilled = parse_qs(urlparse(link).query)["text"][0]
        assert normalise_code(prefilled) == action.code and relay_ref(prefilled) == relay_ids(sessions)[0]


async def test_the_relay_a_tip_came_through_from_the_message(
    chat: Chat,
    sessions: SessionFactory,
    vault: DataVault,
    settings: Settings,
    texts: AlertTexts,
    clock: FixedClock,
) -> None:
    from bot.messages import IncomingMessage
    from storage.relays import RelayNotFound, RelaySource, relay_for_tip
    from tests.relays.conftest import group_message

    await chat.in_group(["/buurtapp", "ja", "7511", "45"])
    action = launch(sessions, clock)
    outbox, _ = dispatcher(sessions, vault, settings, texts, clock)
    await outbox.drain()
    [relay_id] = relay_ids(sessions)
    with transaction(sessions) as session:
        # The fake channel's ids are not Telegram's; Telegram answers a post with its message id.
        row = session.exec(select(Delivery).where(Delivery.kind == DeliveryKind.RELAY_ALERT)).one()
        row.provider_id = post = "4242"
        session.add(row)

    def private(text: str, **extra: Any) -> IncomingMessage:
        return IncomingMessage(channel=WA, sender="+31655501234", text=text, received_at=clock(), **extra)

    cases: dict[str, tuple[IncomingMessage, RelaySource | None]] = {
        "telegram-start-payload": (
            private(f"/start {action.code}_R{relay_id}", start_payload=f"{action.code}_R{relay_id}"),
            RelaySource(relay_id),
        ),
        "whatsapp-prefilled": (private(f"TIP {action.code} R{relay_id}"), RelaySource(relay_id)),
        "reply-to-the-post-in-the-group": (
            group_message("zag hem", clock, user="888002", reply_to=int(post)),
            RelaySource(relay_id, action.id),
        ),
        "mention-in-the-group": (group_message("@BurgernetTestBot zag hem", clock), RelaySource(relay_id)),
        "no-relay-named": (private(f"TIP {action.code}"), None),
        "relay-that-does-not-exist": (private(f"TIP {action.code} R{relay_id + 99}"), None),
    }
    with sessions() as session:
        for case, (message, expected) in cases.items():
            if expected is None:
                with pytest.raises(RelayNotFound):
                    relay_for_tip(session, vault=vault, message=message)
            else:
                assert relay_for_tip(session, vault=vault, message=message) == expected, case
