"""The control room's maps in Debian's Chromium, offline (no tile server, as `make run` has it): zoom, pan
and the scale; the place search ("Enschede" centres the map and sets the point); a click sets a precise
point; on the live page a tip's place, looked up after the tip is stored, becomes a marker."""

from __future__ import annotations

import re
from typing import Any

import pytest

from storage.geo import distance_m
from storage.vocabulary import ChannelKind
from tests.browser.conftest import ENSCHEDE, LiveRoom, shot, twilio_form
from tests.controlroom.conftest import PASSWORD

pytestmark = pytest.mark.browser
SIZES = {"desktop": (1280, 900), "phone": (420, 860)}


def _login(page: Any, url: str) -> None:
    page.goto(f"{url}/controlroom/login")
    page.get_by_label("Gebruikersnaam").fill("olga")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()


def _centre(page: Any, selector: str) -> tuple[float, float]:
    lat, lon = page.locator(selector).get_attribute("data-centre").split(",")
    return float(lat), float(lon)


def _point(page: Any) -> tuple[float, float]:
    return float(page.locator("#f-lat").input_value()), float(page.locator("#f-lon").input_value())


@pytest.mark.parametrize("size", list(SIZES))
def test_the_form_map_zooms_pans_searches_and_picks(live_room: LiveRoom, browser: Any, size: str) -> None:
    from playwright.sync_api import expect

    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="nl-NL")
    page = context.new_page()
    _login(page, live_room.url)
    page.goto(f"{live_room.url}/controlroom/actions/new")
    box = page.locator("#pick-map")
    expect(box).to_have_attribute("data-base", "ready")  # the offline outline is drawn
    expect(box.locator(".leaflet-control-scale-line")).to_be_visible()
    expect(box.locator(".leaflet-control-scale-line")).to_have_text(re.compile(r"^\d+ k?m$"))
    expect(box).to_have_attribute("data-zoom", "7")
    shot(page, f"map-01-form-{size}")

    # Zoom with the + button, pan by dragging.
    box.locator(".leaflet-control-zoom-in").click()
    expect(box).to_have_attribute("data-zoom", "8")
    before = _centre(page, "#pick-map")
    box.scroll_into_view_if_needed()
    bounds = box.bounding_box()
    x, y = bounds["x"] + bounds["width"] / 2, bounds["y"] + bounds["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 120, y + 80, steps=8)
    page.mouse.up()
    expect(box).not_to_have_attribute("data-centre", f"{before[0]:.5f},{before[1]:.5f}")
    after = _centre(page, "#pick-map")
    assert after[1] > before[1] and after[0] > before[0]  # dragged left and down: looking east and north
    assert page.locator("#f-lat").input_value() == ""  # a drag is not a click

    # Search "Enschede" offline: the suggestion list, a pick centres the map and sets the point.
    page.get_by_label("Zoek een plaats, straat of postcode").fill("Enschede")
    option = page.locator("#place-list li", has_text="Enschede").first
    expect(option).to_be_visible()
    shot(page, f"map-02-search-{size}")
    option.click()
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    assert distance_m(*_point(page), *ENSCHEDE) < 3000
    expect(box).to_have_attribute("data-zoom", re.compile(r"^1[1-9]$"))  # zoomed in on the town
    assert distance_m(*_centre(page, "#pick-map"), *_point(page)) < 500
    expect(box.locator("path.picked-point")).to_have_count(1)
    shot(page, f"map-03-picked-{size}")

    # A click on the map sets the point there, to the metre (the map's centre pixel is its centre).
    zoom = int(box.get_attribute("data-zoom"))
    box.scroll_into_view_if_needed()
    bounds = box.bounding_box()
    page.mouse.click(bounds["x"] + bounds["width"] / 2 + 60, bounds["y"] + bounds["height"] / 2)
    centre = _centre(page, "#pick-map")
    lat, lon = _point(page)
    metres_per_px = 40_075_016.686 * 0.6134 / (256 * 2**zoom)  # cos(52.2°) ≈ 0.6134
    assert abs(lat - centre[0]) * 111_000 < 2 * metres_per_px + 2
    assert abs(distance_m(lat, lon, lat, centre[1]) - 60 * metres_per_px) < 2 * metres_per_px + 2
    assert re.fullmatch(r"\d+\.\d{6}", page.locator("#f-lat").input_value())
    context.close()


def test_the_live_map_shows_tips_where_they_were_seen(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    room = live_room
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    page = context.new_page()
    _login(page, room.url)
    page.goto(f"{room.url}/controlroom/actions/new")
    page.get_by_label("Kop (kort: wat is er gebeurd)").fill("Vermist: jongen (8) in rode jas")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    page.get_by_label("Zoek een plaats, straat of postcode").fill("Enschede")
    page.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()
    expect(page.locator("#preview-total")).to_have_text("6")
    expect(page.locator("#action-map path.leaflet-interactive, #action-map path")).not_to_have_count(0)
    page.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    page.get_by_role("button", name="Start de actie").click()
    expect(page.locator("#action-status")).to_have_text("actief")
    code = page.locator("h1").inner_text().split(" · ")[0]
    box = page.locator("#action-map")
    expect(box).to_have_attribute("data-tips", "0")

    # A tip naming a postcode: shown at once, then (after the lookup) on the map, without a reload.
    text = f"{code} Jongen in rode jas gezien bij 7511 AB, fietste richting station"
    tipped = room.post_signed("/webhooks/twilio/sms", twilio_form(ChannelKind.SMS, room.sms[0], text))
    assert tipped.status_code == 200
    expect(page.locator("#tip-1")).to_be_visible()
    marker = box.locator("path.tip-1")
    expect(marker).to_have_count(1)
    expect(box.locator(".tip-label")).to_have_text("#1")
    marker.click(force=True)
    expect(box.locator(".tip-popup")).to_contain_text("7511 AB")
    expect(box.locator(".tip-popup")).to_contain_text("rode jas")
    shot(page, "map-04-live-desktop")
    [tip] = room.runtime.tip_feed.tips(action_id=int(page.url.rsplit("/", 1)[1]))  # type: ignore[union-attr]
    assert tip.lat is not None and tip.lon is not None
    assert distance_m(tip.lat, tip.lon, *ENSCHEDE) < 2000

    # The page loaded afterwards (a phone) draws the marker from the start.
    phone = browser.new_context(viewport={"width": 420, "height": 860}, locale="nl-NL")
    small = phone.new_page()
    small.context.add_cookies(context.cookies())
    small.goto(page.url)
    expect(small.locator("#action-map path.tip-1")).to_have_count(1)
    expect(small.locator("#action-map .leaflet-control-scale-line")).to_be_visible()
    small.locator("#action-map").scroll_into_view_if_needed()
    shot(small, "map-05-live-phone")
    phone.close()
    context.close()
