"""An action's photo end to end in Debian's Chromium: the operator uploads it with the new-action form,
launches, the SMS links to the public page; the page shows the alert, the photo and the ways to tip on a
phone (420x860) and on a desktop, under its CSP; closing the action turns the page dark and the photo's
URL answers 410."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from sqlmodel import select

from storage.models import ActionOutcome, ActionPhoto
from tests.browser.conftest import WAIT_S, LiveRoom, shot
from tests.controlroom.conftest import PASSWORD

pytestmark = pytest.mark.browser
HEADLINE = "Vermist: Noah (8), blauwe jas"
CLOSING = "Noah is gezond teruggevonden. Dank voor het uitkijken."


def _photo(path: Path) -> Path:
    """A 1200x900 JPEG with a GPS position in its EXIF, as a phone's photo would have."""
    image = Image.new("RGB", (1200, 900), (70, 110, 160))
    draw = ImageDraw.Draw(image)
    for y in range(900):
        draw.line([(0, y), (1200, y)], fill=(70 + y // 12, 110 + y // 20, 160 - y // 10))
    draw.ellipse([480, 150, 720, 390], fill=(235, 200, 170))
    draw.rectangle([440, 390, 760, 820], fill=(30, 60, 150))
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 13.0, 17.0), 3: "E", 4: (6.0, 53.0, 37.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    path.write_bytes(out.getvalue())
    return path


def _loaded_width(page: Any, selector: str) -> float:
    shown = page.wait_for_function(
        """(s) => {
            const i = document.querySelector(s);
            if (!(i && i.complete && i.naturalWidth > 0)) return 0;
            return i.getBoundingClientRect().width;
        }""",
        arg=selector,
        timeout=WAIT_S * 1000,
    )
    return float(shown.json_value())


def test_the_public_page_shows_the_photo_and_goes_dark_after_close(
    live_room: LiveRoom, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    room = live_room
    blocked: list[str] = []

    def watch(page: Any) -> Any:
        page.on(
            "console",
            lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
        )
        return page

    # The operator makes the action with a photo and launches it.
    operator = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    page = watch(operator.new_page())
    page.goto(f"{room.url}/controlroom/login")
    page.get_by_label("Gebruikersnaam").fill("olga")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    page.goto(f"{room.url}/controlroom/actions/new")
    page.locator("#f-headline").fill(HEADLINE)
    page.locator("#f-description").fill("Noah is sinds 15:00 vermist rond het Volkspark. Kort blond haar.")
    page.locator("#f-instruction").fill("Benader hem rustig en bel 112.")
    page.locator("#f-postcode").fill("7511")
    page.locator("#f-photo").set_input_files(str(_photo(tmp_path / "noah.jpg")))
    page.locator("#action-form button[type=submit]").click()
    expect(page.locator("#preview-photo")).to_be_visible()
    assert _loaded_width(page, "#preview-photo") > 100
    code_match = re.search(r"BN-[A-Z0-9]{4}", page.locator("h1").inner_text())
    assert code_match
    code = code_match.group(0)
    action_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.locator("#launch-confirm").check()
    page.locator("#launch").click()
    page.wait_for_url(re.compile(rf".*/controlroom/actions/{action_id}$"))

    # The SMS participants get the link to the page.
    link = f"{room.url}/a/{code}"
    sms = room.sent(room.sms[0], 1)[0]["Body"]
    assert link in sms, sms

    # The page on a phone and on a desktop, without cookies or a login.
    views = {"phone": {"width": 420, "height": 860}, "desktop": {"width": 1280, "height": 900}}
    for name, viewport in views.items():
        public = browser.new_context(viewport=viewport, locale="nl-NL")
        reader = watch(public.new_page())
        reader.goto(link)
        expect(reader.locator("h1")).to_have_text(HEADLINE)
        width = _loaded_width(reader, "img.photo")
        assert 100 < width <= viewport["width"], width
        assert reader.locator("a.whatsapp").get_attribute("href") == (
            f"https://wa.me/{room.settings.twilio.whatsapp_from.lstrip('+')}?text=TIP%20{code}"
        )
        assert reader.locator("a.sms").is_visible()
        overflow = reader.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways on the {name} by {overflow}px"
        shot(reader, f"action-page-{name}")
        assert public.cookies() == []
        public.close()

    # Closing the action: the page says only that it is over; the photo is gone.
    with room.runtime.sessions() as session:
        assert len(session.exec(select(ActionPhoto)).all()) == 1
    room.actions().close(action_id, outcome=ActionOutcome.FOUND, closing_text=CLOSING, actor="test")
    phone = browser.new_context(viewport=views["phone"], locale="nl-NL")
    reader = watch(phone.new_page())
    reader.goto(link)
    expect(reader.locator("h1")).to_have_text("Deze Burgernetactie is afgelopen")
    expect(reader.locator(".closing")).to_have_text(CLOSING)
    assert HEADLINE not in reader.content() and reader.locator("img").count() == 0
    shot(reader, "action-page-over-phone")
    assert httpx.get(f"{link}/photo").status_code == 410
    with room.runtime.sessions() as session:
        assert session.exec(select(ActionPhoto)).all() == []
    assert blocked == [], json.dumps(blocked)
    phone.close()
    operator.close()
