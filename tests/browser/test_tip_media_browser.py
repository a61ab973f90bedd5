"""A tip's photo in Debian's Chromium: a WhatsApp photo (fetched from the fake Twilio with basic auth)
appears on the open live page without a reload, loads from our own origin under the page's CSP, and
shows at desktop size and at phone size (420x860)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from storage.models import TipMedia
from storage.vocabulary import ChannelKind
from tests.browser.conftest import WAIT_S, LiveRoom, shot, twilio_form
from tests.controlroom.conftest import PASSWORD
from tests.tips.conftest import launch, person

pytestmark = pytest.mark.browser
JPEG = (Path(__file__).parents[1] / "channels" / "testdata" / "media" / "photo.jpg").read_bytes()


def _stored(room: LiveRoom) -> bool:
    from sqlmodel import select

    with room.runtime.sessions() as session:
        return any(row.state == "stored" for row in session.exec(select(TipMedia)))


def _photo_loaded(page: Any, selector: str) -> float:
    """The shown width of the photo once it is loaded, decoded and laid out.

    A blocked (CSP) or refused (login) image has no natural width. The live page may re-render a tip
    from its stream just after the page loads, so the width is read from the same element, in the same
    check, as its loading.
    """
    shown = page.wait_for_function(
        """(s) => {
            const i = document.querySelector(s);
            if (!(i && i.complete && i.naturalWidth === 480)) return 0;
            return i.getBoundingClientRect().width;
        }""",
        arg=selector,
        timeout=WAIT_S * 1000,
    )
    return float(shown.json_value())


def test_a_whatsapp_photo_shows_in_the_live_page(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    room = live_room
    runtime = room.runtime
    sanne = person(
        runtime.sessions, runtime.vault, runtime.clock(), ChannelKind.WHATSAPP, sender="+31687650042"
    )
    action = launch(runtime.sessions, runtime.clock(), sanne, headline="Gestolen: rode bestelbus")
    blocked: list[str] = []

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    page = context.new_page()
    page.on(
        "console",
        lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto(f"{room.url}/controlroom/login")
    page.get_by_label("Gebruikersnaam").fill("olga")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()
    page.goto(f"{room.url}/controlroom/actions/{action.id}")

    # The tipster sends a photo by WhatsApp while the page is open.
    sid = "MM" + "4" * 32
    url = room.fake.add_media(JPEG, "image/jpeg", message_sid=sid)
    form = twilio_form(
        ChannelKind.WHATSAPP, sanne.sender, "Deze bus reed net richting station",
        NumMedia="1", MediaUrl0=url, MediaContentType0="image/jpeg", MessageType="image",
    )  # fmt: skip
    form.update(MessageSid=sid, SmsMessageSid=sid, SmsSid=sid)
    assert room.post_signed("/webhooks/twilio/whatsapp", form).status_code == 200
    deadline = time.monotonic() + WAIT_S
    while not _stored(room):
        assert time.monotonic() < deadline, "the photo was not fetched"
        time.sleep(0.05)

    # Built by the page's script from the stream, then by the template after a reload.
    img = page.locator("#tip-1 ul.media img")
    expect(img).to_be_visible()
    expect(img).to_have_attribute("src", "/controlroom/tips/1/media/1")
    _photo_loaded(page, "#tip-1 ul.media img")
    shot(page, "tip-photo-desktop")
    page.reload()
    assert _photo_loaded(page, "#tip-1 ul.media img") > 100

    phone = browser.new_context(
        viewport={"width": 420, "height": 860}, locale="nl-NL", storage_state=context.storage_state()
    )
    small = phone.new_page()
    small.goto(f"{room.url}/controlroom/actions/{action.id}")
    small_width = _photo_loaded(small, "#tip-1 ul.media img")
    assert 100 < small_width <= 420 - 16, small_width
    # One call in the page: the tip may be re-rendered from the stream between two protocol calls.
    small.evaluate("document.querySelector('#tip-1').scrollIntoView({block: 'center'})")
    shot(small, "tip-photo-phone")
    assert blocked == [], json.dumps(blocked)
    phone.close()
    context.close()
