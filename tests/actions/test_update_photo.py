"""A photo with an update: taken as at creation (base64, JPEG/PNG, size-limited, stored without EXIF), it
replaces the action's photo on the public page; Telegram and WhatsApp get it with the update, an SMS the
page's link, a call nothing of it; it is deleted when the action ends, like the first."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.dispatch import Dispatcher
from bot.public.action_page import action_page_router
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import ActionPhoto, ActionUpdate, AuditEvent
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, FakeChannel, Person, dispatch_settings, seed_person
from tests.actions.photo_files import TEXT_FILE, has_metadata, jpeg_with_exif, png_with_text
from tests.conftest import FixedClock

TOKEN = "test-token-update-photo"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "https://burgernet.example"
MAX_BYTES = 200_000


@pytest.fixture
def photo_texts() -> AlertTexts:
    """The texts with the page links of a public base URL."""
    return AlertTexts(Catalogue.load(), page_base_url=BASE)


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, photo_texts: AlertTexts, vault: DataVault
) -> Iterator[TestClient]:
    """The actions router (photos wired) and the public action page on a bare app."""
    app = FastAPI()
    settings = dispatch_settings(api_token=TOKEN, action_photo_max_bytes=MAX_BYTES, public_base_url=BASE)
    app.include_router(
        actions_router(
            sessions=sessions, settings=settings, clock=clock, book=book, texts=photo_texts, vault=vault
        )
    )
    app.include_router(
        action_page_router(
            sessions=sessions, vault=vault, settings=settings, texts=photo_texts, catalogue=Catalogue.load()
        )
    )
    with TestClient(app) as test_client:
        yield test_client


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _launched(client: TestClient, clock: FixedClock, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "missing_person",
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
        "instruction": "Ziet u hem? Bel 112.",
        "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 5000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
        **changes,
    }
    created = client.post("/api/v1/actions", headers=AUTH, json=body)
    assert created.status_code == 201, created.text
    action = created.json()
    assert client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH).status_code == 200
    # The update comes later than the launch, as it does in a control room.
    clock.advance(minutes=5)
    return action  # type: ignore[no-any-return]


def _rows(sessions: SessionFactory) -> list[ActionPhoto]:
    with sessions() as session:
        return list(session.exec(select(ActionPhoto)).all())


def _dispatcher(
    sessions: SessionFactory, clock: FixedClock, vault: DataVault, texts: AlertTexts
) -> tuple[Dispatcher, FakeChannel]:
    channel = FakeChannel(ChannelKind)
    dispatcher = Dispatcher(
        sessions, dict.fromkeys(ChannelKind, channel), clock, dispatch_settings(), vault=vault, texts=texts
    )
    return dispatcher, channel


async def test_each_channel_gets_the_update_with_its_photo_as_it_can_carry_it(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    photo_texts: AlertTexts,
) -> None:
    now = clock()
    people: dict[str, Person] = {
        "telegram": seed_person(sessions, vault, now, channels=[ChannelKind.TELEGRAM]),
        "whatsapp": seed_person(sessions, vault, now, channels=[ChannelKind.WHATSAPP], last_inbound_at=now),
        "template": seed_person(sessions, vault, now, channels=[ChannelKind.WHATSAPP]),  # 24 h window closed
        "sms": seed_person(sessions, vault, now, channels=[ChannelKind.SMS]),
        "voice": seed_person(sessions, vault, now, channels=[ChannelKind.VOICE]),
    }
    address = {name: next(iter(p.addresses.values())) for name, p in people.items()}
    action = _launched(client, clock)  # without a photo at first
    dispatcher, channel = _dispatcher(sessions, clock, vault, photo_texts)
    await dispatcher.drain()
    assert all(m.photo_url is None for m in channel.sent)
    channel.sent.clear()

    sent = client.post(
        f"/api/v1/actions/{action['id']}/updates",
        headers=AUTH,
        json={"text": "Tim draagt nu een rode pet.", "photo": _b64(jpeg_with_exif())},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["photo"]["content_type"] == "image/jpeg"
    await dispatcher.drain()
    got = {name: next(m for m in channel.sent if m.recipient == address[name]) for name in people}
    photo, page = f"{BASE}/a/{action['code']}/photo", f"{BASE}/a/{action['code']}"
    assert got["telegram"].photo_url == photo and "Tim draagt nu een rode pet." in got["telegram"].text
    assert got["whatsapp"].photo_url == photo and got["whatsapp"].template_sid is None
    # A template (outside the 24-hour window) has no place for a photo; an SMS links to the page; a call
    # speaks the update only.
    assert got["template"].template_sid is not None and got["template"].photo_url is None
    assert got["sms"].photo_url is None and page in got["sms"].text
    assert got["sms"].text.startswith(f"Aanvulling Burgernet {action['code']}: Tim draagt nu een rode pet.")
    assert photo_texts.sms_segments(got["sms"].text) <= 2
    assert got["voice"].photo_url is None and BASE not in got["voice"].text

    # A second update without a photo: no photo, no link, on any channel.
    clock.advance(minutes=5)
    channel.sent.clear()
    plain = client.post(
        f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json={"text": "Nog niet gevonden."}
    )
    assert plain.status_code == 201
    await dispatcher.drain()
    assert len(channel.sent) == len(people)
    assert all(m.photo_url is None and BASE not in m.text for m in channel.sent)
    with sessions() as session:
        details = [
            e.detail for e in session.exec(select(AuditEvent).where(AuditEvent.event == "action_updated"))
        ]
    assert [d.get("photo", False) for d in details] == [True, False]


async def test_an_updates_photo_replaces_the_first_on_the_public_page_and_goes_at_the_close(
    client: TestClient, sessions: SessionFactory, clock: FixedClock
) -> None:
    action = _launched(client, clock, photo=_b64(jpeg_with_exif()))
    first = client.get(f"/a/{action['code']}/photo")
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    sent = client.post(
        f"/api/v1/actions/{action['id']}/updates",
        headers=AUTH,
        json={"text": "Een nieuwe foto van Tim.", "photo": _b64(png_with_text())},
    )
    assert sent.status_code == 201, sent.text
    served = client.get(f"/a/{action['code']}/photo")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content != first.content and not has_metadata(served.content)
    assert len(_rows(sessions)) == 1, "one photo per action: the new one replaced the first"
    closed = client.post(
        f"/api/v1/actions/{action['id']}/close",
        headers=AUTH,
        json={"outcome": "found", "closing_text": "Terecht."},
    )
    assert closed.status_code == 200
    assert _rows(sessions) == []
    assert client.get(f"/a/{action['code']}/photo").status_code == 410


async def test_a_cancel_deletes_the_photo_an_update_brought(
    client: TestClient, sessions: SessionFactory, clock: FixedClock
) -> None:
    action = _launched(client, clock)
    sent = client.post(
        f"/api/v1/actions/{action['id']}/updates",
        headers=AUTH,
        json={"text": "Foto van Tim.", "photo": "data:image/jpeg;base64," + _b64(jpeg_with_exif())},
    )
    assert sent.status_code == 201, sent.text
    assert len(_rows(sessions)) == 1
    cancelled = client.post(
        f"/api/v1/actions/{action['id']}/cancel", headers=AUTH, json={"reason": "Vergissing."}
    )
    assert cancelled.status_code == 200
    assert _rows(sessions) == []


@pytest.mark.parametrize(
    ("photo", "words"),
    [
        (_b64(TEXT_FILE), "must be a JPEG or PNG"),
        ("geen base64!", "photo must be base64"),
        (_b64(b"\xff\xd8\xff" + b"\x00" * (MAX_BYTES + 10)), "larger than 200000 bytes"),
    ],
    ids=["not-an-image", "not-base64", "too-large"],
)
def test_a_bad_photo_refuses_the_whole_update(
    client: TestClient, sessions: SessionFactory, clock: FixedClock, photo: str, words: str
) -> None:
    action = _launched(client, clock)
    refused = client.post(
        f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json={"text": "Nieuwe foto.", "photo": photo}
    )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "photo"] and words in problem["msg"]
    assert _rows(sessions) == []
    with sessions() as session:
        assert session.exec(select(ActionUpdate)).all() == []


async def test_a_widening_after_an_update_with_a_photo_alerts_the_newly_inside_with_that_photo(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    photo_texts: AlertTexts,
) -> None:
    seed_person(sessions, vault, clock(), channels=[ChannelKind.TELEGRAM])
    action = _launched(
        client,
        clock,
        area={"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 1000}},
    )
    # The same dispatcher sends the first alert (and reads the action without a photo) and the later ones.
    dispatcher, channel = _dispatcher(sessions, clock, vault, photo_texts)
    await dispatcher.drain()
    assert [m.photo_url for m in channel.sent] == [None]
    sent = client.post(
        f"/api/v1/actions/{action['id']}/updates",
        headers=AUTH,
        json={"text": "Foto van Tim erbij.", "photo": _b64(jpeg_with_exif())},
    )
    assert sent.status_code == 201, sent.text
    await dispatcher.drain()
    farther = seed_person(
        sessions, vault, clock(), channels=[ChannelKind.TELEGRAM], at=(ENSCHEDE[0], ENSCHEDE[1] + 0.03)
    )
    channel.sent.clear()
    wider = {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}}
    widened = client.post(f"/api/v1/actions/{action['id']}/widen", headers=AUTH, json={"area": wider})
    assert widened.status_code == 200, widened.text
    await dispatcher.drain()
    [alert] = channel.sent
    assert alert.recipient == farther.addresses[ChannelKind.TELEGRAM]
    assert alert.photo_url == f"{BASE}/a/{action['code']}/photo"
