"""The public page `/a/{code}`: the alert, its photo and how to tip while the action runs; 404 for a draft;
only "it is over" and the closing text once it ended, with the photo gone from storage and its URL 410."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.http_guards import GuardHeadersMiddleware
from bot.public.action_page import PAGE_CSP, action_page_router
from bot.services.actions import ActionService
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import ActionPhoto
from tests.actions.conftest import ENSCHEDE, dispatch_settings
from tests.actions.photo_files import has_metadata, jpeg_with_exif
from tests.conftest import FixedClock

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADLINE = "Vermist: Tim (8), blauwe jas"
DESCRIPTION = "Tim is sinds 14:00 vermist rond het Volkspark. Hij heeft kort blond haar."
INSTRUCTION = "Benader hem rustig en bel 112."
CLOSING = "Tim is gezond teruggevonden in de speeltuin."


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, vault: DataVault
) -> Iterator[TestClient]:
    """The actions API and the public page, behind the app's guard headers."""
    settings = dispatch_settings(
        api_token=TOKEN,
        twilio_sms_from="+3197010200300",
        twilio_whatsapp_from="whatsapp:+3197010200301",
        telegram_bot_username="BurgernetTestBot",
        public_base_url="https://burgernet.example",
    )
    catalogue = Catalogue.load()
    texts = AlertTexts.from_settings(catalogue, settings)
    app = FastAPI()
    app.add_middleware(GuardHeadersMiddleware)
    app.include_router(
        actions_router(sessions=sessions, settings=settings, clock=clock, book=book, texts=texts, vault=vault)
    )
    app.include_router(
        action_page_router(
            sessions=sessions, vault=vault, settings=settings, catalogue=catalogue, texts=texts
        )
    )
    with TestClient(app) as test_client:
        yield test_client


def _create(client: TestClient, clock: FixedClock, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "missing_person",
        "headline": HEADLINE,
        "description": DESCRIPTION,
        "instruction": INSTRUCTION,
        "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 5000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
        "photo": base64.b64encode(jpeg_with_exif()).decode(),
    }
    body.update(changes)
    created = client.post("/api/v1/actions", headers=AUTH, json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def _launched(client: TestClient, clock: FixedClock, **changes: Any) -> dict[str, Any]:
    action = _create(client, clock, **changes)
    assert client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH).status_code == 200
    return action


def _public(response: Any) -> None:
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_an_active_action_shows_its_texts_its_photo_and_the_ways_to_tip(
    client: TestClient, clock: FixedClock
) -> None:
    action = _launched(client, clock)
    code = action["code"]
    page = client.get(f"/a/{code}")
    assert page.status_code == 200
    _public(page)
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "<script" not in page.text.lower()
    html = page.text
    for text in (HEADLINE, DESCRIPTION, INSTRUCTION, code, "Bij direct gevaar: bel 112."):
        assert text.replace("'", "&#39;") in html
    assert f'src="/a/{code}/photo"' in html
    assert f"https://wa.me/3197010200301?text=TIP%20{code}" in html
    assert f"https://t.me/BurgernetTestBot?start={code}" in html
    assert f"sms:+3197010200300?body=TIP%20{code}" in html and "+3197010200300" in html
    assert 'lang="nl"' in html
    photo = client.get(f"/a/{code}/photo")
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    _public(photo)
    assert not has_metadata(photo.content)


@pytest.mark.parametrize(
    ("query", "header", "lang", "phrase"),
    [
        ("", "", "nl", "Iets gezien?"),
        ("?lang=en", "", "en", "Seen something?"),
        ("", "en-GB,en;q=0.9,nl;q=0.5", "en", "Seen something?"),
        ("", "de-DE,de;q=0.9,nl;q=0.8,en;q=0.7", "nl", "Iets gezien?"),
        ("?lang=nl", "en", "nl", "Iets gezien?"),
        ("?lang=xx", "fr", "nl", "Iets gezien?"),
    ],
    ids=["default", "query", "accept-language", "accept-language-order", "query-wins", "unknown"],
)
def test_dutch_by_default_english_when_asked(
    client: TestClient, clock: FixedClock, query: str, header: str, lang: str, phrase: str
) -> None:
    code = _launched(client, clock)["code"]
    page = client.get(f"/a/{code}{query}", headers={"Accept-Language": header} if header else {})
    assert page.status_code == 200 and f'lang="{lang}"' in page.text and phrase in page.text


def test_a_draft_is_not_found_like_an_unknown_code(client: TestClient, clock: FixedClock) -> None:
    draft = _create(client, clock)
    unknown = client.get("/a/BN-XXXX")
    page = client.get(f"/a/{draft['code']}")
    assert page.status_code == unknown.status_code == 404
    assert HEADLINE not in page.text and DESCRIPTION not in page.text
    assert page.text == unknown.text, "nothing tells a draft from a code that does not exist"
    assert client.get(f"/a/{draft['code']}/photo").status_code == 404
    _public(page)


@pytest.mark.parametrize(
    ("outcome", "shown"), [("found", "de persoon is gevonden"), ("cancelled", "ingetrokken")]
)
def test_after_closing_the_page_says_only_that_it_is_over_and_the_photo_is_gone(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, outcome: str, shown: str
) -> None:
    action = _launched(client, clock)
    code = action["code"]
    assert client.get(f"/a/{code}/photo").status_code == 200
    closed = client.post(
        f"/api/v1/actions/{action['id']}/close",
        headers=AUTH,
        json={"outcome": outcome, "closing_text": CLOSING},
    )
    assert closed.status_code == 200
    page = client.get(f"/a/{code}")
    assert page.status_code == 200
    _public(page)
    assert "Deze Burgernetactie is afgelopen" in page.text and shown in page.text and CLOSING in page.text
    for gone in (HEADLINE, DESCRIPTION, INSTRUCTION, "/photo", "wa.me", "t.me"):
        assert gone not in page.text
    assert client.get(f"/a/{code}/photo").status_code == 410
    with sessions() as session:
        assert session.exec(select(ActionPhoto)).all() == []


def test_codes_are_found_in_any_spelling(client: TestClient, clock: FixedClock) -> None:
    code = _launched(client, clock)["code"]
    for spelling in (code.lower(), code.replace("-", "")):
        assert client.get(f"/a/{spelling}").status_code == 200


def _updated(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, book: PostcodeBook
) -> dict[str, Any]:
    """A running action with two updates, the second by a named operator, ten and twenty minutes in."""
    action = _launched(client, clock)
    clock.advance(minutes=10)
    first = {"text": "Tim is gezien bij het station.", "instruction": ""}
    assert client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json=first).status_code == 201
    clock.advance(minutes=10)
    service = ActionService(
        sessions=sessions,
        clock=clock,
        book=book,
        texts=AlertTexts(Catalogue.load()),
        settings=dispatch_settings(),
    )
    service.add_update(
        action["id"],
        text="Hij draagt nu een rode pet.",
        instruction="Volg hem op afstand en bel 112.",
        actor="operator:olga.de.vries",
    )
    return action


def test_a_running_actions_updates_show_newest_first_with_their_time(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, book: PostcodeBook
) -> None:
    start = clock()
    action = _updated(client, clock, sessions, book)
    page = client.get(f"/a/{action['code']}")
    assert page.status_code == 200
    _public(page)
    html = page.text
    assert '<h2 id="updates-h">Aanvullingen</h2>' in html
    newest, oldest = html.index("Hij draagt nu een rode pet."), html.index("Tim is gezien bij het station.")
    assert html.index(DESCRIPTION) < newest < oldest < html.index("Iets gezien?")
    local = ZoneInfo("Europe/Amsterdam")
    for number, minutes in ((2, 20), (1, 10)):
        at = (start + timedelta(minutes=minutes)).astimezone(local)
        assert f'<time datetime="{at.isoformat()}">Aanvulling {number} · {at:%d-%m %H:%M}</time>' in html
    assert '<p class="instruction">Volg hem op afstand en bel 112.</p>' in html
    # Who wrote an update is the control room's business, not the public's.
    assert "olga" not in html and "operator" not in html
    english = client.get(f"/a/{action['code']}?lang=en").text
    assert '<h2 id="updates-h">Updates</h2>' in english and "Update 2 · " in english
    assert "Hij draagt nu een rode pet." in english


def test_an_action_without_updates_shows_no_updates_section(client: TestClient, clock: FixedClock) -> None:
    page = client.get(f"/a/{_launched(client, clock)['code']}")
    assert 'id="updates"' not in page.text and "Aanvulling" not in page.text


@pytest.mark.parametrize("ending", ["cancel", "close"])
def test_an_ended_actions_page_stays_dark_without_its_updates(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, book: PostcodeBook, ending: str
) -> None:
    action = _updated(client, clock, sessions, book)
    body = (
        {"reason": "Verkeerde persoon."}
        if ending == "cancel"
        else {"outcome": "found", "closing_text": CLOSING}
    )
    assert client.post(f"/api/v1/actions/{action['id']}/{ending}", headers=AUTH, json=body).status_code == 200
    page = client.get(f"/a/{action['code']}")
    assert page.status_code == 200 and 'data-state="over"' in page.text
    for gone in ("Aanvulling", "rode pet", "Tim is gezien", "Volg hem op afstand", 'id="updates"'):
        assert gone not in page.text
