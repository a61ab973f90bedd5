"""Drawing a polygon on the new-action form in Debian's Chromium (offline map): corners by clicks, closed
on the first corner, a clear Dutch error for a polygon that is not one, the preview's count and the launch;
at desktop size and at 420x860."""

from __future__ import annotations

import re
from typing import Any

import pytest

from storage.targeting import parse_area
from tests.browser.conftest import ENSCHEDE, LiveRoom, shot
from tests.controlroom.conftest import PASSWORD

pytestmark = pytest.mark.browser
SIZES = {"desktop": (1280, 900), "phone": (420, 860)}


def _login(page: Any, url: str) -> None:
    page.goto(f"{url}/controlroom/login")
    page.get_by_label("Gebruikersnaam").fill("olga")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()


def _click(page: Any, box: Any, dx: float, dy: float) -> None:
    box.scroll_into_view_if_needed()
    bounds = box.bounding_box()
    page.mouse.click(bounds["x"] + bounds["width"] / 2 + dx, bounds["y"] + bounds["height"] / 2 + dy)


@pytest.mark.parametrize("size", list(SIZES))
def test_draw_a_polygon_preview_and_launch(live_room: LiveRoom, browser: Any, size: str) -> None:
    from playwright.sync_api import expect

    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="nl-NL")
    page = context.new_page()
    _login(page, live_room.url)
    page.goto(f"{live_room.url}/controlroom/actions/new")
    box = page.locator("#pick-map")
    expect(box).to_have_attribute("data-base", "ready")
    expect(page.locator("#polygon-tools")).to_be_hidden()  # only for the polygon kind
    page.get_by_label("Kop (kort: wat is er gebeurd)").fill("Overval juwelier, twee mannen op scooter")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill(
        "Zwarte scooter, beide in donkere kleding."
    )
    page.get_by_label("Zoek een plaats, straat of postcode").fill("Enschede")
    page.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    box.locator(".leaflet-control-zoom-out").click()  # room around the town for the corners

    page.get_by_label("Veelhoek (tekenen op de kaart)").check()
    expect(page.locator("#polygon-tools")).to_be_visible()
    half_w = min(160, box.bounding_box()["width"] * 0.3)
    half_h = min(160, box.bounding_box()["height"] * 0.3)
    # Two corners, then Close: too few, and the form says so in Dutch.
    for dx, dy in ((-half_w, -half_h), (half_w, -half_h)):
        _click(page, box, dx, dy)
    expect(box).to_have_attribute("data-polygon", "2")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()
    expect(page.locator("#form-error")).to_contain_text("minstens 3 hoekpunten")
    expect(page.get_by_label("Veelhoek (tekenen op de kaart)")).to_be_checked()
    box = page.locator("#pick-map")
    expect(box).to_have_attribute("data-polygon", "2")  # the corners survive the round trip
    shot(page, f"polygon-01-too-few-{size}")

    page.get_by_role("button", name="Laatste punt weg").click()
    expect(box).to_have_attribute("data-polygon", "1")
    page.get_by_role("button", name="Wissen").click()
    expect(box).to_have_attribute("data-polygon", "0")
    expect(page.locator("#f-polygon")).to_have_value("")

    # Back to the town, then a concave shape of five corners, closed by clicking the first one.
    page.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    box.locator(".leaflet-control-zoom-out").click()
    corners = ((-half_w, -half_h), (half_w, -half_h), (half_w, half_h), (0, half_h / 3), (-half_w, half_h))
    for dx, dy in corners:
        _click(page, box, dx, dy)
    expect(box).to_have_attribute("data-polygon", "5")
    expect(page.locator("#polygon-state")).to_have_text("5 punten, nog niet gesloten")
    box.locator("path.corner-0").click(force=True)
    expect(box).to_have_attribute("data-polygon", "closed")
    expect(page.locator("#polygon-state")).to_have_text("Gesloten veelhoek met 5 hoekpunten")
    expect(box.locator("path.drawn-polygon")).to_have_count(1)
    ring = page.locator("#f-polygon").input_value().split()
    assert len(ring) == 6 and ring[0] == ring[-1]
    area = parse_area({"polygon": [[float(x) for x in p.split(",")] for p in ring]})
    assert area.contains(*ENSCHEDE)  # type: ignore[union-attr]
    shot(page, f"polygon-02-drawn-{size}")

    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()
    expect(page.locator("#preview-total")).to_have_text("6")
    expect(page.locator("#action-map path.area-polygon")).to_have_count(1)
    shot(page, f"polygon-03-preview-{size}")
    page.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    page.get_by_role("button", name="Start de actie").click()
    expect(page.locator("#action-status")).to_have_text("actief")
    expect(page.locator("#action-map path.area-polygon")).to_have_count(1)
    shot(page, f"polygon-04-live-{size}")
    context.close()
