"""MIJN GEGEVENS is complete (alerts received, tips sent, preferences) and MIJN GEGEVENS EXPORT sends a
link that gives the JSON once, for 24 hours, only the asker's own data; then 410."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.public.my_data_export import ExportTokenRedaction, my_data_export_router
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.data_exports import purge_exports
from storage.db import SessionFactory, transaction
from storage.models import (
    Action,
    ActionType,
    AuditEvent,
    ChannelIdentity,
    DataExport,
    Delivery,
    Participant,
    Tip,
)
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.conftest import FixedClock
from tests.flows.conftest import (
    SMS,
    SMS_PHONE,
    TELEGRAM,
    WHATSAPP,
    WHATSAPP_PHONE,
    Converse,
    Person,
    register_steps,
    rows,
    texts,
)

CHANNELS = [
    pytest.param(SMS, "SMS", id="sms"),
    pytest.param(WHATSAPP, "WhatsApp", id="whatsapp"),
    pytest.param(TELEGRAM, "Telegram", id="telegram"),
]
OWN_TIP = "Ik zag twee mannen met een koevoet bij nummer 14, richting station."
OTHER_TIP = "Tip van de buurman: blauwe Golf, kenteken 12-ABC-3."
# Everything the export holds, at the top level: a new kind of data must be added here on purpose.
EXPORT_KEYS = {
    "format", "version", "exported_at", "participant", "consent", "identities", "addresses", "reach_points",
    "preferences", "deliveries", "tips", "neighbourhood_groups", "conversations", "reconfirmation", "events",
}  # fmt: skip
URL = re.compile(r"https?://\S+/mijn-gegevens/(\S+)")


@pytest.fixture
def client(
    sessions: SessionFactory, vault: DataVault, catalogue: Catalogue, clock: FixedClock
) -> Iterator[TestClient]:
    """The public export router on the test's database and clock."""
    app = FastAPI()
    app.include_router(
        my_data_export_router(sessions=sessions, vault=vault, catalogue=catalogue, clock=clock)
    )
    with TestClient(app) as test_client:
        yield test_client


def _owner(sessions: SessionFactory, person: Person) -> tuple[int, int]:
    """The participant and identity id of whoever registered on this person's channel."""
    [identity] = [i for i in rows(sessions, ChannelIdentity) if i.channel is person.channel]
    assert identity.participant_id is not None and identity.id is not None
    return identity.participant_id, identity.id


def seed_history(sessions: SessionFactory, clock: FixedClock, participant_id: int, identity_id: int) -> None:
    """An alert received this month and one 13 months ago, a failed one, the person's tip and another's."""
    now = clock()
    with transaction(sessions) as session:
        actions = []
        for code, kind, age in (("BN-1111", ActionType.BURGLARY, 3), ("BN-2222", ActionType.ROBBERY, 400)):
            action = Action(
                code=code,
                type=kind,
                headline="Inbraak",
                area={},
                created_at=now - timedelta(days=age),
                expires_at=now - timedelta(days=age) + timedelta(hours=2),
            )
            session.add(action)
            session.flush()
            actions.append(action)
        failed = Action(
            code="BN-3333", type=ActionType.OTHER, headline="x", area={}, created_at=now, expires_at=now
        )
        session.add(failed)
        session.flush()
        for action, status in (
            (actions[0], DeliveryStatus.DELIVERED),
            (actions[1], DeliveryStatus.SENT),
            (failed, DeliveryStatus.FAILED),
        ):
            session.add(
                Delivery(
                    action_id=action.id or 0,
                    participant_id=participant_id,
                    identity_id=identity_id,
                    channel=ChannelKind.SMS,
                    status=status,
                    next_attempt_at=action.created_at,
                    created_at=action.created_at,
                    updated_at=action.created_at,
                    sent_at=action.created_at,
                )
            )
        for who, text in ((participant_id, OWN_TIP), (None, OTHER_TIP)):
            session.add(
                Tip(
                    action_id=actions[0].id or 0,
                    identity_id=identity_id if who else None,
                    participant_id=who,
                    channel=ChannelKind.SMS,
                    reporter="r-own" if who else "r-other",
                    sender_hash="own" if who else "other",
                    text=text,
                    received_at=now - timedelta(days=2),
                    updated_at=now - timedelta(days=2),
                )
            )


async def test_my_data_by_sms_counts_and_points_to_the_export(
    converse: Converse, sessions: SessionFactory, clock: FixedClock
) -> None:
    await converse(SMS, [*register_steps(SMS), "GEEN INBRAAK"])
    seed_history(sessions, clock, *_owner(sessions, SMS))
    [summary, history] = texts((await converse(SMS, ["MIJN GEGEVENS"]))[0])
    assert summary.startswith("Dit weten we van u:")
    assert history == (
        "Burgernetberichten aan u (12 maanden): 1. Uw tips: 1. Voorkeuren: stuur VOORKEUREN. "
        "Alles als bestand: stuur MIJN GEGEVENS EXPORT."
    )


@pytest.mark.parametrize(("person", "channel"), CHANNELS[1:])
async def test_my_data_in_a_chat_lists_alerts_and_own_tips(
    converse: Converse, sessions: SessionFactory, clock: FixedClock, person: Person, channel: str
) -> None:
    await converse(person, [*register_steps(person, channel=channel), "STIL 23-7"])
    seed_history(sessions, clock, *_owner(sessions, person))
    history = texts((await converse(person, ["MIJN GEGEVENS"]))[0])[1]
    assert history.splitlines() == [
        "Burgernetberichten aan u, afgelopen 12 maanden (1):",
        "- 17-11-2026 BN-1111: Inbraak",
        "Uw tips (1):",
        f"- 18-11-2026 bij BN-1111: {OWN_TIP}",
        "Geen berichten over: niets, u krijgt alle soorten",
        "Stille uren: elke dag 23:00-07:00",
        "Wijzigen: VOORKEUREN. Alles als bestand (JSON): stuur MIJN GEGEVENS EXPORT.",
    ]
    assert OTHER_TIP not in history


async def test_my_data_in_english_without_history(converse: Converse) -> None:
    transcript = await converse(
        TELEGRAM, [*register_steps(TELEGRAM, channel="Telegram"), "ENGLISH", "MY DATA"]
    )
    assert texts(transcript[-1])[1].splitlines()[:4] == [
        "Burgernet alerts to you, last 12 months (0):",
        "- none",
        "Your tips (0):",
        "- none",
    ]


@pytest.mark.parametrize(("person", "channel"), CHANNELS)
async def test_export_link_works_once_then_410(
    converse: Converse,
    sessions: SessionFactory,
    clock: FixedClock,
    client: TestClient,
    person: Person,
    channel: str,
) -> None:
    await converse(person, [*register_steps(person, channel=channel), "GEEN OVERVAL", "STIL 22-6"])
    seed_history(sessions, clock, *_owner(sessions, person))
    [reply] = texts((await converse(person, ["MIJN GEGEVENS EXPORT"]))[0])
    assert reply.startswith("Uw gegevens als bestand (JSON): http://127.0.0.1:8080/mijn-gegevens/")
    assert reply.splitlines()[1] == "De link werkt 1 keer, 24 uur lang. Deel hem met niemand."
    found = URL.search(reply)
    assert found is not None
    token = found.group(1)
    # Only a keyed hash of the token is stored.
    assert all(token not in row.token_hash for row in rows(sessions, DataExport))

    first = client.get(f"/mijn-gegevens/{token}")
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.headers["content-disposition"].startswith("attachment;")
    assert first.headers["cache-control"] == "no-store" and "set-cookie" not in first.headers
    data = first.json()
    assert set(data) == EXPORT_KEYS
    assert data["participant"]["name"] == "Jan"
    assert data["participant"]["phone"] == (WHATSAPP_PHONE if person is WHATSAPP else SMS_PHONE)
    assert [i["channel"] for i in data["identities"]] == [person.channel.value]
    assert data["addresses"][0]["postcode"] == "7511 AB"
    assert data["preferences"] == {
        "skipped_types": ["robbery"],
        "quiet_hours": {"days": None, "start": "22:00", "end": "06:00"},
    }
    assert data["consent"]["privacy_statement_version"] == "2026-1"
    assert sorted(d["action_code"] for d in data["deliveries"]) == ["BN-1111", "BN-2222", "BN-3333"]
    assert [t["text"] for t in data["tips"]] == [OWN_TIP]
    assert OTHER_TIP not in first.text and "r-other" not in first.text
    assert {"preferences_changed", "data_export_requested"} <= {e["event"] for e in data["events"]}

    again = client.get(f"/mijn-gegevens/{token}")
    assert again.status_code == 410
    assert again.text.startswith("Deze link is al gebruikt, verlopen of onbekend.")
    assert "personal_data_exported" in [e.event for e in rows(sessions, AuditEvent)]


async def test_expired_forged_and_erased_links_give_410_and_purge_removes_them(
    converse: Converse, sessions: SessionFactory, clock: FixedClock, client: TestClient
) -> None:
    await converse(SMS, register_steps(SMS))
    expired = URL.search(texts((await converse(SMS, ["MIJN GEGEVENS EXPORT"]))[0])[0])
    assert expired is not None
    clock.advance(hours=24, seconds=1)
    assert client.get(f"/mijn-gegevens/{expired.group(1)}").status_code == 410
    assert client.get(f"/mijn-gegevens/{expired.group(1)[:-2]}xx").status_code == 410
    assert client.get("/mijn-gegevens/" + "A" * 22).status_code == 410
    erased = URL.search(texts((await converse(SMS, ["my data export"]))[0])[0])
    assert erased is not None
    await converse(SMS, ["STOP"])
    assert client.get(f"/mijn-gegevens/{erased.group(1)}").status_code == 410
    assert rows(sessions, DataExport) == []

    await converse(WHATSAPP, register_steps(WHATSAPP, channel="WhatsApp"))
    used = URL.search(texts((await converse(WHATSAPP, ["MIJN GEGEVENS EXPORT"]))[0])[0])
    assert used is not None
    await converse(WHATSAPP, ["MIJN GEGEVENS EXPORT"])
    assert client.get(f"/mijn-gegevens/{used.group(1)}").status_code == 200
    with transaction(sessions) as session:
        assert purge_exports(session, now=clock()) == 1
    assert len(rows(sessions, DataExport)) == 1


async def test_each_link_opens_only_its_own_persons_data(
    converse: Converse, sessions: SessionFactory, clock: FixedClock, client: TestClient
) -> None:
    await converse(SMS, register_steps(SMS, name="Jan"))
    seed_history(sessions, clock, *_owner(sessions, SMS))
    await converse(WHATSAPP, ["START", "JA", "Fatima", "1012 AB 5", "JA", "JA", "WhatsApp"])
    mine = URL.search(texts((await converse(SMS, ["MIJN GEGEVENS EXPORT"]))[0])[0])
    theirs = URL.search(texts((await converse(WHATSAPP, ["MIJN GEGEVENS EXPORT"]))[0])[0])
    assert mine is not None and theirs is not None and mine.group(1) != theirs.group(1)
    fatima = client.get(f"/mijn-gegevens/{theirs.group(1)}")
    assert fatima.status_code == 200
    assert fatima.json()["participant"]["name"] == "Fatima"
    for secret in ("Jan", "+31612345678", OWN_TIP, "BN-1111", "7511"):
        assert secret not in fatima.text
    jan = client.get(f"/mijn-gegevens/{mine.group(1)}").json()
    assert jan["participant"]["name"] == "Jan" and "Fatima" not in str(jan)
    ids = {p.id for p in rows(sessions, Participant)}
    assert len(ids) == 2


async def test_three_exports_a_day(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await converse(TELEGRAM, register_steps(TELEGRAM, channel="Telegram"))
    transcript = await converse(TELEGRAM, ["MIJN GEGEVENS EXPORT"] * 4)
    assert [bool(URL.search(texts(t)[0])) for t in transcript] == [True, True, True, False]
    assert texts(transcript[-1]) == [catalogue.render("nl", "mydata.export_limit", max=3)]
    transcript = await converse(TELEGRAM, ["/mijngegevens"])
    assert len(rows(sessions, DataExport)) == 3


async def test_export_when_not_registered(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(SMS, ["MIJN GEGEVENS EXPORT"])
    assert texts(transcript[0]) == [catalogue.render("nl", "mydata.none", channel="SMS")]


def test_the_access_log_never_holds_an_export_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/mijn-gegevens/AbC-123_xyz?lang=en", "1.1", 200),
        None,
    )
    assert ExportTokenRedaction().filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /mijn-gegevens/***?lang=en HTTP/1.1" 200'
