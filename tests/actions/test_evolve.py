"""Actions that evolve: an update to whom the alert reached, a cancel of an action sent in error, a wider
area that alerts only the newly inside, and CAP Update/Cancel for them, through the REST API."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select, update
from sqlmodel import col

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.api.cap import cap_router
from bot.cap.document import NS, validation_errors
from bot.channels.base import PermanentSendError
from bot.channels.segments import count_segments
from bot.dispatch import Dispatcher
from bot.services.actions import ActionService
from bot.texts import Catalogue
from scheduler.jobs import JobContext, widen_rings
from storage.action_photos import PhotoNotFound, photo_info
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import AuditEvent, ChannelIdentity, Delivery, DeliveryKind, Participant, RelayPlatform
from storage.regions import ANY_TYPE, EVERYWHERE, save_region, set_approval_rule
from storage.relays import RELAY_RULES_VERSION, RelayDraft, register_relay
from storage.tips import action_replied_to, received_actions
from storage.vocabulary import ChannelKind
from tests.actions.conftest import (
    ENSCHEDE,
    FakeChannel,
    Person,
    dispatch_settings,
    draft_over_enschede,
    launch_over_enschede,
    seed_person,
)
from tests.actions.photo_files import jpeg_with_exif
from tests.conftest import FixedClock

TOKEN = "test-token-evolve"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LAT, LON = ENSCHEDE
# About 3.3 km east of the centre: outside a 2 km circle, inside a 5 km one.
EAST = (LAT, LON + 0.049)
# About 20 km away: outside every circle here.
FAR = (LAT + 0.18, LON)


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts, vault: DataVault
) -> Iterator[TestClient]:
    """The actions and CAP routers on a bare app, with a fixed clock and photos wired."""
    settings = dispatch_settings(api_token=TOKEN, public_base_url="https://burgernet.example")
    app = FastAPI()
    app.include_router(
        actions_router(sessions=sessions, settings=settings, clock=clock, book=book, texts=texts, vault=vault)
    )
    app.include_router(
        cap_router(
            sessions=sessions,
            settings=settings,
            clock=clock,
            book=book,
            texts=texts,
            catalogue=Catalogue.load(),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@dataclass
class World:
    """The people and relay of a launched action, the fake channel and a dispatcher to drain."""

    action: dict[str, Any]
    telegram: Person
    sms: Person
    fell_back: Person
    unreachable: Person
    outside: Person
    coordinator: str
    channel: FakeChannel
    dispatcher: Dispatcher


def _body(clock: FixedClock, radius_m: float = 5000, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "missing_person",
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
        "instruction": "Ziet u hem? Bel 112.",
        "area": {"circle": {"lat": LAT, "lon": LON, "radius_m": radius_m}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    body.update(changes)
    return body


def _relay(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    *,
    number: str = "+31687654321",
    area: dict[str, Any] | None = None,
) -> str:
    with transaction(sessions) as session:
        coordinator = ChannelIdentity(
            channel=ChannelKind.SMS,
            address_hash=vault.lookup_hash(f"sms:{number}"),
            address_enc=vault.encrypt(number),
            created_at=clock(),
        )
        session.add(coordinator)
        session.flush()
        place = book.lookup("7511")
        draft = RelayDraft(
            group_name="Buurtpreventie Volkspark",
            platform=RelayPlatform.WHATSAPP,
            area=area or {"postcodes": [{"pc4": "7511", "lat": place.lat, "lon": place.lon}]},
            municipalities=["0153"],
            estimated_members=40,
            language="nl",
            rules_version=RELAY_RULES_VERSION,
            rules_at=clock(),
        )
        register_relay(session, coordinator=coordinator, draft=draft, now=clock())
    return number


async def _launched(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
    **changes: Any,
) -> World:
    now = clock()
    telegram = seed_person(sessions, vault, now, channels=(ChannelKind.TELEGRAM,))
    sms = seed_person(sessions, vault, now, channels=(ChannelKind.SMS,), at=EAST)
    fell_back = seed_person(
        sessions, vault, now, channels=(ChannelKind.SMS, ChannelKind.TELEGRAM), preferred=ChannelKind.SMS
    )
    unreachable = seed_person(sessions, vault, now, channels=(ChannelKind.SMS,))
    outside = seed_person(sessions, vault, now, channels=(ChannelKind.WHATSAPP,), at=FAR)
    coordinator = _relay(sessions, vault, book, clock)
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, **changes))
    assert created.status_code == 201, created.text
    action = created.json()
    assert client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH).status_code == 200
    channel = FakeChannel(ChannelKind)
    channel.fail(fell_back.addresses[ChannelKind.SMS], PermanentSendError("bad number"))
    channel.fail(unreachable.addresses[ChannelKind.SMS], PermanentSendError("bad number"))
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        clock,
        dispatch_settings(),
        "w",
        vault=vault,
        texts=texts,
    )
    await dispatcher.drain()
    channel.sent.clear()
    return World(action, telegram, sms, fell_back, unreachable, outside, coordinator, channel, dispatcher)


def _show(client: TestClient, action_id: int) -> dict[str, Any]:
    response = client.get(f"/api/v1/actions/{action_id}", headers=AUTH)
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


def _cap(client: TestClient, action_id: int) -> bytes:
    response = client.get(f"/api/v1/actions/{action_id}/cap", headers=AUTH)
    assert response.status_code == 200
    assert validation_errors(response.content) == []
    return response.content


def _find(document: bytes, path: str) -> list[str]:
    return [e.text or "" for e in etree.fromstring(document).iterfind(path, {"c": NS})]


# ---- updates ---------------------------------------------------------------------------------------


async def test_an_update_goes_to_whom_the_alert_reached_on_the_channel_that_reached_them(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    world = await _launched(client, sessions, vault, book, clock, texts)
    clock.advance(minutes=20)
    response = client.post(
        f"/api/v1/actions/{world.action['id']}/updates",
        headers=AUTH,
        json={"text": "Tim draagt ook een rode pet.", "instruction": "Spreek hem rustig aan en bel 112."},
    )
    assert response.status_code == 201, response.text
    await world.dispatcher.drain()
    by_recipient = {m.recipient: m for m in world.channel.sent}
    # The one whose SMS failed got the alert on Telegram, so the update goes there; nobody else gets it.
    assert set(by_recipient) == {
        world.telegram.addresses[ChannelKind.TELEGRAM],
        world.sms.addresses[ChannelKind.SMS],
        world.fell_back.addresses[ChannelKind.TELEGRAM],
        world.coordinator,
    }
    assert by_recipient[world.fell_back.addresses[ChannelKind.TELEGRAM]].channel is ChannelKind.TELEGRAM
    code = world.action["code"]
    for message in world.channel.sent:
        assert code in message.text
        assert "Aanvulling" in message.text
        assert "rode pet" in message.text
        assert "Spreek hem rustig aan en bel 112." in message.text
    sms = by_recipient[world.sms.addresses[ChannelKind.SMS]].text
    assert sms.startswith(f"Aanvulling Burgernet {code}: Tim draagt ook een rode pet.")
    assert count_segments(sms).segments <= 2
    relay_text = by_recipient[world.coordinator].text
    assert "Bel de politie op 0900-8844" in relay_text or "Tip Burgernet" in relay_text
    shown = _show(client, world.action["id"])
    assert shown["deliveries"]["update"]["by_status"] == {"sent": 3}
    assert shown["deliveries"]["relay_update"]["by_status"] == {"sent": 1}
    [update] = shown["updates"]
    assert update["number"] == 1
    assert update["text"] == "Tim draagt ook een rode pet."
    assert update["instruction"] == "Spreek hem rustig aan en bel 112."
    assert update["created_by"] == "api"
    assert update["created_at"].startswith(clock().isoformat()[:16])
    assert update["counts"] == {"update": {"sent": 3}, "relay_update": {"sent": 1}}


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("exercise", [False, True], ids=["real", "exercise"])
async def test_two_updates_reach_the_same_people_and_the_sms_reads_well(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    texts: AlertTexts,
    lang: str,
    exercise: bool,
) -> None:
    person = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,), language=lang)
    if exercise:
        with transaction(sessions) as session:
            participant = session.get(Participant, person.participant_id)
            assert participant is not None
            participant.exercises = True
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, exercise=exercise)).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    channel = FakeChannel(ChannelKind)
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        clock,
        dispatch_settings(),
        "w",
        vault=vault,
        texts=texts,
    )
    await dispatcher.drain()
    # Two parts' worth with the code and the instruction: the longest an update may be.
    long_text = "Tim is gezien bij het station in een rode jas met een grote zwarte rugzak. " * 2
    for text in (long_text.strip(), "Hij is nu op de fiets."):
        clock.advance(minutes=5)
        response = client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json={"text": text})
        assert response.status_code == 201, response.text
    await dispatcher.drain()
    alert, first, second = (m.text for m in channel.sent)
    marker = {"nl": "Aanvulling", "en": "Update"}[lang]
    prefix = {"nl": "OEFENING: ", "en": "EXERCISE: "}[lang] if exercise else ""
    assert alert.startswith(f"{prefix}Burgernet {action['code']}")
    for sms in (first, second):
        assert count_segments(sms).segments <= 2, sms
        assert sms.startswith(f"{prefix}{marker} Burgernet {action['code']}: ")
        # Without an instruction of its own the update repeats the action's.
        assert "Ziet u hem? Bel 112." in sms
    assert long_text.strip() in first
    assert "Hij is nu op de fiets." in second
    assert [u["number"] for u in _show(client, action["id"])["updates"]] == [1, 2]


async def test_a_tip_after_an_update_still_links_to_the_action(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    world = await _launched(client, sessions, vault, book, clock, texts)
    client.post(f"/api/v1/actions/{world.action['id']}/updates", headers=AUTH, json={"text": "Rode pet."})
    await world.dispatcher.drain()
    identity_id = world.sms.identities[ChannelKind.SMS]
    with sessions() as session:
        update_provider_id = session.scalars(
            select(col(Delivery.provider_id)).where(
                col(Delivery.identity_id) == identity_id,
                col(Delivery.kind) == DeliveryKind.UPDATE,
            )
        ).one()
        assert update_provider_id is not None
        running = received_actions(
            session, identity_id=identity_id, participant_id=world.sms.participant_id, now=clock()
        )
        replied = action_replied_to(
            session, identity_id=identity_id, channel=ChannelKind.SMS, provider_id=update_provider_id
        )
    assert [a.id for a in running] == [world.action["id"]]
    assert replied is not None and replied.id == world.action["id"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"text": "   "}, "must not be empty"),
        ({}, "Field required"),
        ({"text": "Een man met een lange grijze jas en een hoed. " * 12}, "does not fit in an SMS"),
    ],
    ids=["blank", "missing", "too-long-for-sms"],
)
def test_an_update_refuses_a_text_it_cannot_send(
    client: TestClient, clock: FixedClock, body: dict[str, Any], words: str
) -> None:
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    response = client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json=body)
    assert response.status_code == 422, response.text
    assert any(words in p["msg"] for p in response.json()["detail"]), response.json()
    assert _show(client, action["id"])["updates"] == []


def test_only_an_active_action_takes_an_update(client: TestClient, clock: FixedClock) -> None:
    draft = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    response = client.post(f"/api/v1/actions/{draft['id']}/updates", headers=AUTH, json={"text": "Rode pet."})
    assert response.status_code == 409
    client.post(f"/api/v1/actions/{draft['id']}/launch", headers=AUTH)
    client.post(
        f"/api/v1/actions/{draft['id']}/close",
        headers=AUTH,
        json={"outcome": "found", "closing_text": "Tim is gevonden."},
    )
    response = client.post(f"/api/v1/actions/{draft['id']}/updates", headers=AUTH, json={"text": "Rode pet."})
    assert response.status_code == 409
    assert client.post("/api/v1/actions/999/updates", headers=AUTH, json={"text": "x"}).status_code == 404


def test_cap_of_an_updated_action_is_an_update_referencing_the_alert(
    client: TestClient, clock: FixedClock
) -> None:
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    alert = _cap(client, action["id"])
    clock.advance(minutes=10)
    client.post(
        f"/api/v1/actions/{action['id']}/updates",
        headers=AUTH,
        json={"text": "Tim draagt een rode pet.", "instruction": "Volg hem op afstand en bel 112."},
    )
    update = _cap(client, action["id"])
    assert _find(update, "c:msgType") == ["Update"]
    assert _find(update, "c:status") == ["Actual"]
    assert _find(update, "c:identifier") != _find(alert, "c:identifier")
    assert _find(update, "c:sent") != _find(alert, "c:sent")
    reference = ",".join(
        [_find(alert, "c:sender")[0], _find(alert, "c:identifier")[0], _find(alert, "c:sent")[0]]
    )
    assert _find(update, "c:references") == [reference]
    [description] = _find(update, "c:info/c:description")
    assert description.startswith("Tim is sinds 14:00 vermist") and description.endswith(
        "Tim draagt een rode pet."
    )
    assert _find(update, "c:info/c:instruction") == ["Volg hem op afstand en bel 112."]


# ---- cancel -----------------------------------------------------------------------------------------


async def test_cancel_sends_a_correction_to_whom_the_alert_reached_and_takes_the_page_down(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    photo = base64.b64encode(jpeg_with_exif()).decode()
    world = await _launched(client, sessions, vault, book, clock, texts, photo=photo)
    with sessions() as session:
        photo_info(session, action_id=world.action["id"])
    alert = _cap(client, world.action["id"])
    clock.advance(minutes=3)
    response = client.post(
        f"/api/v1/actions/{world.action['id']}/cancel",
        headers=AUTH,
        json={"reason": "Verkeerde regio gekozen."},
    )
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["outcome"] == "cancelled"
    assert cancelled["photo"] is None
    # The reason is the control room's own: not a closing text the public page would show.
    assert not cancelled["closing_text"]
    assert cancelled["deliveries"]["cancel"]["by_status"] == {"queued": 3}
    assert cancelled["deliveries"]["relay_cancel"]["by_status"] == {"queued": 1}
    assert cancelled["deliveries"]["closing"]["total"] == 0
    await world.dispatcher.drain()
    code = world.action["code"]
    assert {m.recipient for m in world.channel.sent} == {
        world.telegram.addresses[ChannelKind.TELEGRAM],
        world.sms.addresses[ChannelKind.SMS],
        world.fell_back.addresses[ChannelKind.TELEGRAM],
        world.coordinator,
    }
    for message in world.channel.sent:
        assert message.text.startswith(f"Vergissing: negeer Burgernetactie {code}")
        # The operator's reason is for the control room, not for the citizens.
        assert "regio" not in message.text
        assert count_segments(message.text).segments <= 2 or message.channel is not ChannelKind.SMS
    with sessions() as session:
        with pytest.raises(PhotoNotFound):
            photo_info(session, action_id=world.action["id"])
        [detail] = session.scalars(
            select(col(AuditEvent.detail)).where(
                col(AuditEvent.subject) == f"action:{world.action['id']}",
                col(AuditEvent.event) == "action_cancelled",
            )
        )
        assert detail == {"reason": "Verkeerde regio gekozen.", "corrections": 3}
    document = _cap(client, world.action["id"])
    assert _find(document, "c:msgType") == ["Cancel"]
    reference = ",".join(
        [_find(alert, "c:sender")[0], _find(alert, "c:identifier")[0], _find(alert, "c:sent")[0]]
    )
    assert _find(document, "c:references") == [reference]
    again = client.post(f"/api/v1/actions/{world.action['id']}/cancel", headers=AUTH, json={"reason": "x"})
    assert again.status_code == 409


def test_an_action_awaiting_approval_is_cancelled_without_a_message(
    client: TestClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    seed_person(sessions, vault, clock())
    with transaction(sessions) as session:
        save_region(session, name=EVERYWHERE, municipalities=[], everywhere=True, now=clock())
        set_approval_rule(session, region_name=EVERYWHERE, action_type=ANY_TYPE, required=True)
    made = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    assert client.post(f"/api/v1/actions/{made['id']}/launch", headers=AUTH).status_code == 202
    response = client.post(f"/api/v1/actions/{made['id']}/cancel", headers=AUTH, json={"reason": "Dubbel."})
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["status"] == "cancelled"
    assert sum(counts["total"] for counts in shown["deliveries"].values()) == 0
    assert client.post(f"/api/v1/actions/{made['id']}/approve", headers=AUTH).status_code == 409


def test_a_draft_is_cancelled_without_a_message(client: TestClient, clock: FixedClock) -> None:
    draft = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    blank = client.post(f"/api/v1/actions/{draft['id']}/cancel", headers=AUTH, json={"reason": " "})
    assert blank.status_code == 422
    response = client.post(f"/api/v1/actions/{draft['id']}/cancel", headers=AUTH, json={"reason": "Dubbel."})
    assert response.status_code == 200
    shown = response.json()
    assert shown["status"] == "cancelled"
    assert all(counts["total"] == 0 for counts in shown["deliveries"].values())


# ---- widen ------------------------------------------------------------------------------------------


async def test_widening_alerts_only_the_newly_inside_nearest_first_and_nobody_twice(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    world = await _launched(client, sessions, vault, book, clock, texts, radius_m=2000)
    # The 2 km circle left out the SMS person 3.3 km east (and the one 20 km away).
    assert world.sms.addresses[ChannelKind.SMS] not in {m.recipient for m in world.channel.attempts}
    nearer = seed_person(sessions, vault, clock(), channels=(ChannelKind.TELEGRAM,), at=(LAT, LON + 0.035))
    clock.advance(minutes=10)
    wider = {"circle": {"lat": LAT, "lon": LON + 0.01, "radius_m": 5000}}
    response = client.post(f"/api/v1/actions/{world.action['id']}/widen", headers=AUTH, json={"area": wider})
    assert response.status_code == 200, response.text
    widened = response.json()
    assert widened["area"] == wider
    # Two newly inside; the three who had the alert (sent, fell back or failed) are not queued again.
    assert widened["deliveries"]["alert"]["by_status"] == {"sent": 2, "failed": 1, "queued": 2}
    world.channel.attempts.clear()
    await world.dispatcher.drain()
    assert [m.recipient for m in world.channel.sent] == [
        nearer.addresses[ChannelKind.TELEGRAM],
        world.sms.addresses[ChannelKind.SMS],
    ]
    assert all("Burgernet" in m.text and world.action["code"] in m.text for m in world.channel.sent)
    # Widening again to the same area reaches no one new and is refused as no widening.
    same = client.post(f"/api/v1/actions/{world.action['id']}/widen", headers=AUTH, json={"area": wider})
    assert same.status_code == 422
    with sessions() as session:
        detail = session.scalars(
            select(col(AuditEvent.detail)).where(col(AuditEvent.event) == "action_widened")
        ).one()
    assert detail["from"] == {"circle": {"lat": LAT, "lon": LON, "radius_m": 2000.0}}
    assert detail["to"] == wider
    assert detail["recipients"] == 2


async def test_widening_reaches_a_group_the_new_area_touches_once(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    world = await _launched(client, sessions, vault, book, clock, texts, radius_m=2000)
    east_group = _relay(
        sessions,
        vault,
        book,
        clock,
        number="+31687650000",
        area={"circle": {"lat": EAST[0], "lon": EAST[1], "radius_m": 300}},
    )
    assert east_group not in {m.recipient for m in world.channel.attempts}
    for radius in (5000, 6000):
        wider = {"circle": {"lat": LAT, "lon": LON, "radius_m": radius}}
        response = client.post(
            f"/api/v1/actions/{world.action['id']}/widen", headers=AUTH, json={"area": wider}
        )
        assert response.status_code == 200, response.text
        await world.dispatcher.drain()
    relayed = [m for m in world.channel.sent if m.recipient in (east_group, world.coordinator)]
    # The group near the centre had it already; the one in the east gets it once, over two widenings.
    assert [m.recipient for m in relayed] == [east_group]
    assert _show(client, world.action["id"])["relays"]["relays"] == 2


@pytest.mark.parametrize(
    ("area", "words"),
    [
        ({"circle": {"lat": LAT, "lon": LON, "radius_m": 1000}}, "must contain the old one"),
        ({"circle": {"lat": LAT, "lon": LON + 0.03, "radius_m": 3000}}, "must contain the old one"),
        ({"municipalities": ["0153"]}, "widens only to a larger one of the same kind"),
    ],
    ids=["smaller", "moved-out", "other-kind"],
)
def test_an_area_that_does_not_contain_the_old_one_is_refused(
    client: TestClient, clock: FixedClock, area: dict[str, Any], words: str
) -> None:
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000)).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    response = client.post(f"/api/v1/actions/{action['id']}/widen", headers=AUTH, json={"area": area})
    assert response.status_code == 422, response.text
    assert any(words in p["msg"] for p in response.json()["detail"]), response.json()
    assert _show(client, action["id"])["area"]["circle"]["radius_m"] == 2000


def test_municipalities_widen_to_a_list_that_keeps_them(client: TestClient, clock: FixedClock) -> None:
    action = client.post(
        "/api/v1/actions", headers=AUTH, json=_body(clock, area={"municipalities": ["Enschede"]})
    ).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    lost = client.post(
        f"/api/v1/actions/{action['id']}/widen", headers=AUTH, json={"area": {"municipalities": ["0164"]}}
    )
    assert lost.status_code == 422
    assert "missing: 0153" in lost.json()["detail"][0]["msg"]
    wider = client.post(
        f"/api/v1/actions/{action['id']}/widen",
        headers=AUTH,
        json={"area": {"municipalities": ["Enschede", "0164"]}},
    )
    assert wider.status_code == 200, wider.text
    assert wider.json()["area"] == {"municipalities": ["0153", "0164"]}


def _square(half_m: float, *, lat: float = LAT, lon: float = LON) -> list[list[float]]:
    """A closed square ring (CAP order) with sides `half_m` metres from the point."""
    dlat = half_m / 111_195.0
    dlon = dlat / 0.6124  # cos(52.2°): degrees of longitude are shorter here
    ring = [
        [lat - dlat, lon - dlon],
        [lat - dlat, lon + dlon],
        [lat + dlat, lon + dlon],
        [lat + dlat, lon - dlon],
    ]
    return [*ring, ring[0]]


async def test_a_circle_widens_to_a_polygon_that_contains_it_alerting_only_the_newly_inside(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    world = await _launched(client, sessions, vault, book, clock, texts, radius_m=2000)
    # Square, 4 km from the centre to each side: the SMS person 3.3 km east is inside, the far one not.
    nearer = seed_person(sessions, vault, clock(), channels=(ChannelKind.TELEGRAM,), at=(LAT, LON + 0.035))
    wider = {"polygon": _square(4000)}
    response = client.post(f"/api/v1/actions/{world.action['id']}/widen", headers=AUTH, json={"area": wider})
    assert response.status_code == 200, response.text
    assert response.json()["area"] == wider
    assert response.json()["deliveries"]["alert"]["by_status"] == {"sent": 2, "failed": 1, "queued": 2}
    await world.dispatcher.drain()
    assert [m.recipient for m in world.channel.sent] == [
        nearer.addresses[ChannelKind.TELEGRAM],
        world.sms.addresses[ChannelKind.SMS],
        # The group's area is near the centre: it had the alert already, only the new people get it.
    ]
    # A GeoJSON polygon containing that one widens it again: only the far person is new.
    ring = [[b, a] for a, b in _square(25_000)]
    geojson = {"geojson": {"type": "Polygon", "coordinates": [ring]}}
    world.channel.sent.clear()
    again = client.post(f"/api/v1/actions/{world.action['id']}/widen", headers=AUTH, json={"area": geojson})
    assert again.status_code == 200, again.text
    await world.dispatcher.drain()
    assert [m.recipient for m in world.channel.sent] == [world.outside.addresses[ChannelKind.WHATSAPP]]
    with sessions() as session:
        details = list(
            session.scalars(
                select(col(AuditEvent.detail))
                .where(col(AuditEvent.event) == "action_widened")
                .order_by(col(AuditEvent.id))
            )
        )
    assert [(d["from"], d["to"], d["recipients"]) for d in details] == [
        ({"circle": {"lat": LAT, "lon": LON, "radius_m": 2000.0}}, wider, 2),
        (wider, geojson, 1),
    ]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        # A square 1.5 km to each side cannot hold a circle of 2 km.
        (
            {"circle": {"lat": LAT, "lon": LON, "radius_m": 2000}},
            {"polygon": _square(1500)},
            "old circle lies outside",
        ),
        # Large enough, but moved 3 km north.
        (
            {"circle": {"lat": LAT, "lon": LON, "radius_m": 2000}},
            {"polygon": _square(4000, lat=LAT + 0.027)},
            "old circle lies outside",
        ),
        ({"polygon": _square(3000)}, {"polygon": _square(2000)}, "old polygon lies outside"),
        ({"polygon": _square(3000)}, {"polygon": _square(3000)}, "nothing to widen"),
        (
            {"polygon": _square(3000)},
            {"circle": {"lat": LAT, "lon": LON, "radius_m": 3500}},
            "a corner of the old polygon",
        ),
        (
            {"polygon": _square(3000)},
            {"municipalities": ["0153"]},
            "widens only to a larger one of the same kind",
        ),
    ],
    ids=[
        "circle-too-large",
        "circle-moved-out",
        "polygon-smaller",
        "polygon-same",
        "circle-misses-corners",
        "other-kind",
    ],
)
def test_a_polygon_that_does_not_contain_the_old_area_is_a_422(
    client: TestClient, clock: FixedClock, old: dict[str, Any], new: dict[str, Any], words: str
) -> None:
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, area=old)).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    response = client.post(f"/api/v1/actions/{action['id']}/widen", headers=AUTH, json={"area": new})
    assert response.status_code == 422, response.text
    assert any(words in p["msg"] for p in response.json()["detail"]), response.json()
    assert _show(client, action["id"])["area"] == old


def test_a_polygon_widens_to_a_polygon_or_circle_around_it(client: TestClient, clock: FixedClock) -> None:
    action = client.post(
        "/api/v1/actions", headers=AUTH, json=_body(clock, area={"polygon": _square(2000)})
    ).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    # Corners 2.83 km from the centre: a circle of 3 km holds them all.
    circle = {"circle": {"lat": LAT, "lon": LON, "radius_m": 3000}}
    assert (
        client.post(f"/api/v1/actions/{action['id']}/widen", headers=AUTH, json={"area": circle}).status_code
        == 200
    )
    polygon = {"polygon": _square(3100)}
    response = client.post(f"/api/v1/actions/{action['id']}/widen", headers=AUTH, json={"area": polygon})
    assert response.status_code == 200, response.text
    assert _show(client, action["id"])["area"] == polygon


def test_only_an_active_action_is_widened(client: TestClient, clock: FixedClock) -> None:
    draft = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000)).json()
    wider = {"circle": {"lat": LAT, "lon": LON, "radius_m": 5000}}
    response = client.post(f"/api/v1/actions/{draft['id']}/widen", headers=AUTH, json={"area": wider})
    assert response.status_code == 409


# ---- rings ------------------------------------------------------------------------------------------


async def test_rings_widen_the_circle_on_the_clock_and_alert_only_the_newly_inside(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    now = clock()
    centre = seed_person(sessions, vault, now, channels=(ChannelKind.TELEGRAM,))
    east = seed_person(sessions, vault, now, channels=(ChannelKind.SMS,), at=EAST)
    further = seed_person(sessions, vault, now, channels=(ChannelKind.SMS,), at=(LAT, LON + 0.065))
    rings = {"radii_m": [4000, 6000], "every_minutes": 15}
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000, rings=rings))
    assert created.status_code == 201, created.text
    action = created.json()
    assert action["rings"] == {"radii_m": [4000.0, 6000.0], "every_minutes": 15}
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    channel = FakeChannel(ChannelKind)
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        clock,
        dispatch_settings(),
        "w",
        vault=vault,
        texts=texts,
    )
    context = JobContext(
        sessions=sessions, settings=dispatch_settings(), clock=clock, vault=vault, catalogue=Catalogue.load()
    )

    async def ring_at(minutes: int) -> tuple[int, list[str]]:
        clock.advance(minutes=minutes)
        widened = widen_rings(context).counts.get("widened", 0)
        channel.sent.clear()
        await dispatcher.drain()
        return widened, channel.recipients()

    await dispatcher.drain()
    assert channel.recipients() == [centre.addresses[ChannelKind.TELEGRAM]]
    assert await ring_at(14) == (0, [])
    assert await ring_at(1) == (1, [east.addresses[ChannelKind.SMS]])
    assert await ring_at(14) == (0, [])
    assert await ring_at(1) == (1, [further.addresses[ChannelKind.SMS]])
    assert await ring_at(60) == (0, [])
    shown = _show(client, action["id"])
    assert shown["area"]["circle"]["radius_m"] == 6000
    assert shown["deliveries"]["alert"]["by_status"] == {"sent": 3}
    with sessions() as session:
        details = list(
            session.scalars(
                select(col(AuditEvent.detail))
                .where(col(AuditEvent.event) == "action_widened")
                .order_by(col(AuditEvent.id))
            )
        )
    assert [(d["ring"], d["to"]["circle"]["radius_m"], d["recipients"]) for d in details] == [
        (1, 4000, 1),
        (2, 6000, 1),
    ]


async def test_rings_stop_when_the_action_is_closed(
    client: TestClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,), at=EAST)
    rings = {"radii_m": [4000], "every_minutes": 10}
    action = client.post(
        "/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000, rings=rings)
    ).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    client.post(
        f"/api/v1/actions/{action['id']}/close",
        headers=AUTH,
        json={"outcome": "found", "closing_text": "Terecht."},
    )
    clock.advance(minutes=30)
    context = JobContext(
        sessions=sessions, settings=dispatch_settings(), clock=clock, vault=vault, catalogue=Catalogue.load()
    )
    assert widen_rings(context).counts == {}
    assert _show(client, action["id"])["area"]["circle"]["radius_m"] == 2000


async def test_stopped_rings_widen_no_further_and_stay_on_the_action(
    client: TestClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    east = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,), at=EAST)
    further = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,), at=(LAT, LON + 0.065))
    rings = {"radii_m": [4000, 6000], "every_minutes": 10}
    action = client.post(
        "/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000, rings=rings)
    ).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    context = JobContext(
        sessions=sessions, settings=dispatch_settings(), clock=clock, vault=vault, catalogue=Catalogue.load()
    )
    clock.advance(minutes=10)
    assert widen_rings(context).counts["widened"] == 1
    clock.advance(minutes=3)
    stopped = client.post(f"/api/v1/actions/{action['id']}/rings/stop", headers=AUTH)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["rings"] == {
        **rings,
        "radii_m": [4000.0, 6000.0],
        "stopped_at": clock().isoformat(),
    }
    clock.advance(minutes=30)
    assert widen_rings(context).counts == {}
    shown = _show(client, action["id"])
    assert shown["area"]["circle"]["radius_m"] == 4000
    with sessions() as session:
        alerted = set(
            session.scalars(select(col(Delivery.participant_id)).where(col(Delivery.kind) == "alert"))
        )
        [event] = session.scalars(select(AuditEvent).where(col(AuditEvent.event) == "action_rings_stopped"))
    assert east.participant_id in alerted and further.participant_id not in alerted
    assert (event.actor, event.detail["radius_m"]) == ("api", 4000)
    # Stopped already, or never had rings: nothing to stop.
    assert client.post(f"/api/v1/actions/{action['id']}/rings/stop", headers=AUTH).status_code == 409
    plain = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000)).json()
    client.post(f"/api/v1/actions/{plain['id']}/launch", headers=AUTH)
    refused = client.post(f"/api/v1/actions/{plain['id']}/rings/stop", headers=AUTH)
    assert refused.status_code == 409 and "no rings to stop" in refused.json()["detail"]
    assert client.post("/api/v1/actions/99999/rings/stop", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"area": {"municipalities": ["0153"]}, "rings": {"radii_m": [4000], "every_minutes": 5}},
            "rings widen a circle",
        ),
        ({"rings": {"radii_m": [4000, 3000], "every_minutes": 5}}, "larger than the circle before it"),
        ({"rings": {"radii_m": [1500], "every_minutes": 5}}, "larger than the circle before it"),
        ({"rings": {"radii_m": [60_000], "every_minutes": 5}}, "at most 50 km"),
        ({"rings": {"radii_m": [4000], "every_minutes": 0}}, "greater than or equal to 1"),
    ],
    ids=["not-a-circle", "shrinking", "inside-the-circle", "too-large", "no-interval"],
)
def test_rings_that_cannot_widen_are_a_422(
    client: TestClient, clock: FixedClock, changes: dict[str, Any], words: str
) -> None:
    response = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, radius_m=2000, **changes))
    assert response.status_code == 422, response.text
    assert any(words in p["msg"] for p in response.json()["detail"]), response.json()


def test_two_updates_at_once_are_numbered_one_after_the_other(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    person = seed_person(sessions, vault, clock(), channels=(ChannelKind.TELEGRAM,))
    action_id = draft_over_enschede(sessions, clock)
    launch_over_enschede(sessions, clock, action_id)
    with transaction(sessions) as session:
        # As if the alert was sent: an update goes to whom it reached.
        session.execute(update(Delivery).values(status="sent"))
    service = ActionService(
        sessions=sessions, clock=clock, book=book, texts=texts, settings=dispatch_settings()
    )
    start = threading.Barrier(2)
    numbers: list[int] = []

    def send(text: str) -> None:
        start.wait()
        row, _ = service.add_update(action_id, text=text, instruction="", actor="test")
        numbers.append(row.number)

    workers = [threading.Thread(target=send, args=(text,)) for text in ("Rode pet.", "Op de fiets.")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(numbers) == [1, 2]
    with sessions() as session:
        sent = session.scalars(
            select(col(Delivery.update_no)).where(
                col(Delivery.participant_id) == person.participant_id,
                col(Delivery.kind) == DeliveryKind.UPDATE,
            )
        ).all()
    assert sorted(sent) == [1, 2]


def test_cap_leaves_out_characters_xml_cannot_hold(client: TestClient, clock: FixedClock) -> None:
    # Not NUL: PostgreSQL refuses it in text before CAP is ever written (a 422 at create).
    body = _body(clock, headline="Vermist:\x01 jongen\x1b (8)", description="Tim\x0b is weg.")
    action = client.post("/api/v1/actions", headers=AUTH, json=body).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json={"text": "Rode\x07 pet."})
    document = _cap(client, action["id"])
    assert _find(document, "c:info/c:headline") == ["Vermist: jongen (8)"]
    assert _find(document, "c:info/c:description") == ["Tim is weg.\n\nRode pet."]
