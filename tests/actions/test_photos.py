"""An action's photo: checked by content, stored without EXIF and encrypted, deleted when the action ends;
the SMS alert of an action with a photo links to its public page and still fits its parts."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.dispatch import Dispatcher
from bot.photos import PhotoRefused, clean_photo
from bot.services.action_photos import ActionPhotos
from bot.texts import Catalogue
from scheduler.jobs import JobContext, close_expired_actions
from storage.action_photos import put_photo
from storage.actions import ActionDraft, create_action
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.keys import rotate_data_key
from storage.models import Action, ActionPhoto, ActionType, DeliveryKind
from storage.vocabulary import ChannelKind
from tests.actions.conftest import (
    ENSCHEDE,
    FakeChannel,
    dispatch_settings,
    draft_over_enschede,
    launch_over_enschede,
    seed_person,
)
from tests.actions.photo_files import (
    BROKEN_JPEG,
    TEXT_FILE,
    has_metadata,
    jpeg_with_exif,
    noise_jpeg,
    png_with_text,
)
from tests.conftest import FixedClock

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "https://burgernet.example"
MAX_BYTES = 200_000


# --------------------------------------------------------------------------------------------------
# Cleaning


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(jpeg_with_exif(), "image/jpeg"), (png_with_text(), "image/png")],
    ids=["jpeg-with-gps", "png-with-text"],
)
def test_a_photo_is_re_encoded_without_metadata(data: bytes, content_type: str) -> None:
    assert has_metadata(data), "the test's photo carries metadata to strip"
    clean = clean_photo(data, max_bytes=MAX_BYTES)
    assert clean.content_type == content_type
    assert not has_metadata(clean.data)
    with Image.open(io.BytesIO(clean.data)) as image:
        assert (image.width, image.height) == (clean.width, clean.height)


def test_a_turned_photo_is_stored_upright_since_its_orientation_tag_is_dropped() -> None:
    clean = clean_photo(jpeg_with_exif((320, 200), orientation=6), max_bytes=MAX_BYTES)
    assert (clean.width, clean.height) == (200, 320)


def test_a_large_photo_is_shrunk_to_the_largest_side_channels_show() -> None:
    image = Image.new("RGB", (4000, 1000), (10, 10, 10))
    out = io.BytesIO()
    image.save(out, format="PNG")
    clean = clean_photo(out.getvalue(), max_bytes=10_000_000)
    assert (clean.width, clean.height) == (2048, 512)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (TEXT_FILE, "type"),
        (BROKEN_JPEG, "broken"),
        (b"GIF89a" + b"\x00" * 100, "type"),
        (noise_jpeg(600), "too_large"),
    ],
    ids=["text", "jpeg-signature-only", "gif", "too-large"],
)
def test_what_is_not_a_jpeg_or_png_within_the_limit_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(PhotoRefused) as refused:
        clean_photo(data, max_bytes=MAX_BYTES)
    assert refused.value.reason == reason


# --------------------------------------------------------------------------------------------------
# REST API


@pytest.fixture
def photo_texts() -> AlertTexts:
    """The texts with the page links of a public base URL."""
    return AlertTexts(Catalogue.load(), page_base_url=BASE)


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, photo_texts: AlertTexts, vault: DataVault
) -> Iterator[TestClient]:
    """The actions router with photos on a bare app."""
    app = FastAPI()
    app.include_router(
        actions_router(
            sessions=sessions,
            settings=dispatch_settings(api_token=TOKEN, action_photo_max_bytes=MAX_BYTES),
            clock=clock,
            book=book,
            texts=photo_texts,
            vault=vault,
        )
    )
    with TestClient(app) as test_client:
        yield test_client


def _body(clock: FixedClock, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "missing_person",
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": "Tim is sinds 14:00 vermist rond het Volkspark. Hij heeft kort blond haar.",
        "instruction": "Ziet u hem? Bel 112.",
        "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 5000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    body.update(changes)
    return body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _rows(sessions: SessionFactory) -> list[ActionPhoto]:
    with sessions() as session:
        return list(session.exec(select(ActionPhoto)).all())


@pytest.mark.parametrize(
    "photo",
    [_b64(jpeg_with_exif()), "data:image/jpeg;base64," + _b64(jpeg_with_exif())],
    ids=["base64", "data-url"],
)
def test_create_with_a_base64_photo_stores_it_encrypted_without_exif(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, vault: DataVault, photo: str
) -> None:
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, photo=photo))
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["photo"]["content_type"] == "image/jpeg"
    assert (out["photo"]["width"], out["photo"]["height"]) == (320, 200)
    served = client.get(out["photo"]["url"], headers=AUTH)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert not has_metadata(served.content)
    [row] = _rows(sessions)
    assert row.action_id == out["id"] and row.size == len(served.content)
    assert b"JFIF" not in row.data_enc.encode() and vault.decrypt_bytes(row.data_enc) == served.content


@pytest.mark.parametrize(
    ("photo", "message"),
    [
        ("not base64!", "base64"),
        (_b64(TEXT_FILE), "JPEG or PNG"),
        (_b64(BROKEN_JPEG), "cannot be read"),
        (_b64(noise_jpeg(600)), f"larger than {MAX_BYTES}"),
    ],
    ids=["not-base64", "text", "broken", "too-large"],
)
def test_create_with_a_bad_photo_is_a_422_on_the_photo_and_stores_nothing(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, photo: str, message: str
) -> None:
    refused = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, photo=photo))
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    assert problem["loc"] == ["body", "photo"] and message in problem["msg"]
    assert client.get("/api/v1/actions", headers=AUTH).json() == []
    assert _rows(sessions) == []


def _draft(client: TestClient, clock: FixedClock) -> int:
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock))
    assert created.status_code == 201
    assert created.json()["photo"] is None
    return int(created.json()["id"])


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("photo.jpg", jpeg_with_exif(), "image/jpeg"),
        ("photo.png", png_with_text(), "image/png"),
        ("renamed.jpg", png_with_text(), "image/png"),
    ],
    ids=["jpeg", "png", "png-named-jpg"],
)
def test_put_a_photo_on_a_draft_by_multipart(
    client: TestClient, clock: FixedClock, name: str, data: bytes, content_type: str
) -> None:
    action_id = _draft(client, clock)
    put = client.put(
        f"/api/v1/actions/{action_id}/photo", headers=AUTH, files={"photo": (name, data, "image/jpeg")}
    )
    assert put.status_code == 200, put.text
    assert put.json()["photo"]["content_type"] == content_type
    served = client.get(f"/api/v1/actions/{action_id}/photo", headers=AUTH)
    assert served.headers["content-type"] == content_type and not has_metadata(served.content)


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [("notes.jpg", TEXT_FILE, 422), ("big.jpg", noise_jpeg(600), 422)],
    ids=["text-named-jpg", "too-large"],
)
def test_put_a_bad_photo_is_refused(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, name: str, data: bytes, status: int
) -> None:
    action_id = _draft(client, clock)
    put = client.put(
        f"/api/v1/actions/{action_id}/photo", headers=AUTH, files={"photo": (name, data, "image/jpeg")}
    )
    assert put.status_code == status
    assert put.json()["detail"][0]["loc"] == ["body", "photo"]
    assert _rows(sessions) == []


def test_a_photo_can_be_removed_from_a_draft_but_not_changed_once_launched(
    client: TestClient, clock: FixedClock, sessions: SessionFactory
) -> None:
    action_id = _draft(client, clock)
    files = {"photo": ("p.jpg", jpeg_with_exif(), "image/jpeg")}
    assert client.put(f"/api/v1/actions/{action_id}/photo", headers=AUTH, files=files).status_code == 200
    assert client.delete(f"/api/v1/actions/{action_id}/photo", headers=AUTH).status_code == 204
    assert _rows(sessions) == []
    assert client.get(f"/api/v1/actions/{action_id}").status_code == 401
    assert client.get(f"/api/v1/actions/{action_id}", headers=AUTH).json()["photo"] is None
    assert client.put(f"/api/v1/actions/{action_id}/photo", headers=AUTH, files=files).status_code == 200
    assert client.post(f"/api/v1/actions/{action_id}/launch", headers=AUTH).status_code == 200
    late = client.put(f"/api/v1/actions/{action_id}/photo", headers=AUTH, files=files)
    assert late.status_code == 409
    assert client.delete(f"/api/v1/actions/{action_id}/photo", headers=AUTH).status_code == 409
    assert client.put("/api/v1/actions/999/photo", headers=AUTH, files=files).status_code == 404


@pytest.mark.parametrize("outcome", ["found", "cancelled"])
def test_closing_deletes_the_photo_in_the_same_transaction(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, outcome: str
) -> None:
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, photo=_b64(jpeg_with_exif())))
    action_id = created.json()["id"]
    assert client.post(f"/api/v1/actions/{action_id}/launch", headers=AUTH).status_code == 200
    closed = client.post(
        f"/api/v1/actions/{action_id}/close",
        headers=AUTH,
        json={"outcome": outcome, "closing_text": "Tim is terecht."},
    )
    assert closed.status_code == 200 and closed.json()["photo"] is None
    assert _rows(sessions) == []
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None and not action.has_photo
    assert client.get(f"/api/v1/actions/{action_id}/photo", headers=AUTH).status_code == 404


def test_an_expired_action_loses_its_photo(
    client: TestClient,
    clock: FixedClock,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
) -> None:
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, photo=_b64(png_with_text())))
    action_id = created.json()["id"]
    assert client.post(f"/api/v1/actions/{action_id}/launch", headers=AUTH).status_code == 200
    assert len(_rows(sessions)) == 1
    context = JobContext(
        sessions=sessions,
        settings=dispatch_settings(),
        clock=clock,
        vault=vault,
        catalogue=Catalogue.load(),
        senders={},
        book=book,
    )
    clock.advance(minutes=121)
    assert close_expired_actions(context).counts.get("closed") == 1
    assert _rows(sessions) == []
    assert client.get(f"/api/v1/actions/{action_id}", headers=AUTH).json()["status"] == "closed"


# --------------------------------------------------------------------------------------------------
# The SMS link


def _action(clock: FixedClock, *, description: str, instruction: str, has_photo: bool) -> Action:
    return Action(
        code="BN-4K7P",
        type=ActionType.MISSING_PERSON,
        headline="Vermist: jongen (8), blauwe jas",
        description=description,
        instruction=instruction,
        area={},
        created_at=clock(),
        expires_at=clock(),
        has_photo=has_photo,
    )


LONG = " ".join(["Tim heeft kort blond haar, draagt een blauwe jas en een rode rugzak met reflectoren."] * 6)


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("description", ["Tim is sinds 14:00 vermist.", LONG], ids=["short", "long"])
def test_the_sms_of_an_action_with_a_photo_links_to_its_page_within_two_parts(
    photo_texts: AlertTexts, clock: FixedClock, lang: str, description: str
) -> None:
    instruction = "Benader hem niet, bel direct 112."
    action = _action(clock, description=description, instruction=instruction, has_photo=True)
    sms = photo_texts.text(action, kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang=lang)
    assert f"{BASE}/a/BN-4K7P" in sms
    assert photo_texts.photo_url("BN-4K7P") == f"{BASE}/a/BN-4K7P/photo"
    assert instruction in sms and "BN-4K7P" in sms and sms.endswith("112")
    assert photo_texts.sms_segments(sms) <= 2
    without = photo_texts.text(
        action.model_copy(update={"has_photo": False}),
        kind=DeliveryKind.ALERT,
        channel=ChannelKind.SMS,
        lang=lang,
    )
    assert "/a/" not in without
    for kind in (DeliveryKind.CLOSING, DeliveryKind.TIP_RESULT):
        assert "/a/" not in photo_texts.text(action, kind=kind, channel=ChannelKind.SMS, lang=lang)
    chat = photo_texts.text(action, kind=DeliveryKind.ALERT, channel=ChannelKind.TELEGRAM, lang=lang)
    assert "/a/" not in chat, "chat channels get the photo itself"


def test_an_instruction_that_fits_alone_but_not_with_the_link_is_a_problem_only_with_a_photo(
    photo_texts: AlertTexts, clock: FixedClock
) -> None:
    instruction = "Benader hem niet. " + "Let op: " * 20 + "bel direct 112."
    bare = _action(clock, description="", instruction=instruction, has_photo=False)
    assert photo_texts.problems(bare) == []
    with_photo = bare.model_copy(update={"has_photo": True})
    # The instruction is never cut: with the link the headline no longer fits beside it.
    assert {p.field for p in photo_texts.problems(with_photo)} & {"instruction", "headline"}


def test_a_photo_that_would_push_the_instruction_out_of_the_sms_is_refused_on_a_draft(
    client: TestClient, clock: FixedClock, sessions: SessionFactory
) -> None:
    instruction = "Benader hem niet. " + "Let op: " * 20 + "bel direct 112."
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, instruction=instruction))
    assert created.status_code == 201, created.text
    files = {"photo": ("p.jpg", jpeg_with_exif(), "image/jpeg")}
    put = client.put(f"/api/v1/actions/{created.json()['id']}/photo", headers=AUTH, files=files)
    assert put.status_code == 422
    assert put.json()["detail"][0]["loc"] in (["body", "instruction"], ["body", "headline"])
    assert _rows(sessions) == []


def test_the_preview_sms_of_a_draft_with_a_photo_carries_the_link(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, vault: DataVault
) -> None:
    seed_person(sessions, vault, clock(), channels=[ChannelKind.SMS])
    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, photo=_b64(jpeg_with_exif())))
    action_id = created.json()["id"]
    code = created.json()["code"]
    preview = client.post(f"/api/v1/actions/{action_id}/launch?dry_run=true", headers=AUTH).json()
    assert f"{BASE}/a/{code}" in preview["sms_text"] and preview["sms_segments"] <= 2


def test_key_rotation_re_encrypts_the_photo(sessions: SessionFactory, clock: FixedClock) -> None:
    old_key, new_key = new_data_key(), new_data_key()
    photos = ActionPhotos(
        sessions=sessions,
        clock=clock,
        vault=DataVault(old_key),
        texts=AlertTexts(Catalogue.load()),
        max_bytes=MAX_BYTES,
    )
    photo = photos.prepare(jpeg_with_exif())
    draft = ActionDraft(
        type=ActionType.MISSING_PERSON,
        headline="Vermist",
        description="Tim.",
        instruction="",
        area={"municipalities": ["0153"]},
        expires_at=clock() + timedelta(hours=1),
    )
    with transaction(sessions) as session:
        action = create_action(session, draft=draft, now=clock(), created_by="test")
        put_photo(session, action_id=action.id or 0, photo=photo, now=clock())
    report = rotate_data_key(sessions, vault=DataVault(f"{new_key},{old_key}"))
    assert report.values >= 1
    [row] = _rows(sessions)
    assert DataVault(new_key).decrypt_bytes(row.data_enc) == DataVault(old_key).decrypt_bytes(photo.data_enc)


# --------------------------------------------------------------------------------------------------
# The photo on the chats


async def test_the_chats_get_the_photo_with_the_alert_and_sms_its_link(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, photo_texts: AlertTexts
) -> None:
    now = clock()
    telegram = seed_person(sessions, vault, now, channels=[ChannelKind.TELEGRAM])
    whatsapp = seed_person(sessions, vault, now, channels=[ChannelKind.WHATSAPP], last_inbound_at=now)
    template_only = seed_person(sessions, vault, now, channels=[ChannelKind.WHATSAPP])  # 24 h window closed
    sms = seed_person(sessions, vault, now, channels=[ChannelKind.SMS])
    action_id = draft_over_enschede(sessions, clock)
    photos = ActionPhotos(sessions=sessions, clock=clock, vault=vault, texts=photo_texts, max_bytes=MAX_BYTES)
    photos.attach(action_id, photos.prepare(jpeg_with_exif()), actor="test")
    code = launch_over_enschede(sessions, clock, action_id).code
    channel = FakeChannel(ChannelKind)
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        clock,
        dispatch_settings(),
        vault=vault,
        texts=photo_texts,
    )
    assert (await dispatcher.drain()).sent == 4
    by_recipient = {m.recipient: m for m in channel.sent}
    photo = f"{BASE}/a/{code}/photo"
    assert by_recipient[telegram.addresses[ChannelKind.TELEGRAM]].photo_url == photo
    assert by_recipient[whatsapp.addresses[ChannelKind.WHATSAPP]].photo_url == photo
    # A template starts a conversation after 24 hours: it has no place for a photo; an SMS links to the page.
    assert by_recipient[template_only.addresses[ChannelKind.WHATSAPP]].template_sid is not None
    assert by_recipient[template_only.addresses[ChannelKind.WHATSAPP]].photo_url is None
    texted = by_recipient[sms.addresses[ChannelKind.SMS]]
    assert texted.photo_url is None and f"{BASE}/a/{code}" in texted.text
