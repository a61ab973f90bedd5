"""Rings in Debian's Chromium on the whole app: the operator asks for rings on the new-action form (a
mistake first, said in Dutch), launches, sees the rings' schedule on the live page and stops them. The
form and the live page at 1280x900 and at 420x860."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlmodel import select

from storage.models import Action, AuditEvent
from tests.browser.conftest import LiveRoom, shot
from tests.browser.test_controlroom_browser import _login

pytestmark = pytest.mark.browser
SIZES = {"desktop": (1280, 900), "phone": (420, 860)}


@pytest.mark.parametrize("size", list(SIZES))
def test_an_operator_sets_rings_sees_their_schedule_and_stops_them(
    live_room: LiveRoom, browser: Any, size: str
) -> None:
    from playwright.sync_api import expect

    room = live_room
    width, height = SIZES[size]
    page = browser.new_context(viewport={"width": width, "height": height}, locale="nl-NL").new_page()
    _login(page, room.url, "olga")
    page.goto(f"{room.url}/controlroom/actions/new")
    expect(page.locator("#pick-map")).to_have_attribute("data-base", "ready")
    page.get_by_label("Kop (kort: wat is er gebeurd)").fill("Vermist: Noah (8), blauwe jas")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill(
        "Noah is sinds 15:00 weg bij het Volkspark."
    )
    page.get_by_label("Zoek een plaats, straat of postcode").fill("Enschede")
    page.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    # Rings belong to a circle: the fields go away for a polygon and come back.
    expect(page.locator("#ring-tools")).to_be_visible()
    page.get_by_label("Veelhoek (tekenen op de kaart)").check()
    expect(page.locator("#ring-tools")).to_be_hidden()
    page.get_by_label("Cirkel rond een punt").check()
    expect(page.locator("#ring-tools")).to_be_visible()

    radii = page.get_by_label(re.compile("Ringen: grotere stralen in meters"))
    radii.fill("6000, 4000")
    page.get_by_label("Minuten tussen de ringen").fill("15")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()
    expect(page.locator("#form-error")).to_contain_text(
        "Elke ring moet groter zijn dan de cirkel (2000 m) en dan de ring ervoor."
    )
    expect(radii).to_have_value("6000, 4000")
    shot(page, f"rings-01-refused-{size}")
    radii.fill("4000, 6000")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()
    page.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    page.get_by_role("button", name="Start de actie").click()
    expect(page.locator("#action-status")).to_have_text("actief")

    rings = page.locator("#ring-list li")
    expect(rings).to_have_count(2)
    expect(rings.nth(0)).to_have_attribute("data-state", "next")
    expect(rings.nth(0)).to_contain_text(re.compile(r"Ring 1: 4000 m om \d\d:\d\d · volgende"))
    expect(page.locator("#rings-state")).to_have_text(re.compile(r"Volgende ring om \d\d:\d\d\."))
    expect(page.locator("#action-map path.ring-circle")).to_have_count(2)  # the rings to come, dashed
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the live page scrolls sideways by {overflow}px"
    shot(page, f"rings-02-live-{size}")
    page.get_by_role("button", name="Ringen stoppen").click()
    expect(page.locator(".flash")).to_have_text("Ringen gestopt: het gebied groeit niet meer vanzelf.")
    expect(page.locator("#rings-state")).to_have_text(re.compile(r"Ringen gestopt om \d\d:\d\d\."))
    expect(page.get_by_role("button", name="Ringen stoppen")).to_have_count(0)
    expect(rings.nth(1)).to_contain_text("gestopt")
    expect(page.locator("#action-map path.ring-circle")).to_have_count(0)
    shot(page, f"rings-03-stopped-{size}")
    with room.runtime.sessions() as session:
        action = session.exec(select(Action)).one()
        assert action.rings is not None and action.rings["radii_m"] == [4000.0, 6000.0]
        assert action.rings.get("stopped_at")
        assert session.exec(select(AuditEvent).where(AuditEvent.event == "action_rings_stopped")).one()
