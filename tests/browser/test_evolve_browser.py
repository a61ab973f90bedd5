"""A running action evolves in Debian's Chromium on the whole app: the operator sends an update from the
live page (it reaches the six people by SMS and WhatsApp), widens the circle (only the one newly inside
gets the alert; a smaller circle is refused with a reason), then cancels the action as sent in error
(a correction to all seven). The live page with its forms at 1280×900 and at 420×860."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from storage.actions import ActionDraft
from storage.models import Action, ActionStatus, ActionType
from storage.vocabulary import ChannelKind
from tests.actions.conftest import seed_person
from tests.browser.conftest import ENSCHEDE, LiveRoom, shot
from tests.browser.test_controlroom_browser import _login

pytestmark = pytest.mark.browser
# About 3.3 km east of the centre: outside the 2 km circle, inside the widened 5 km one.
EAST = (ENSCHEDE[0], ENSCHEDE[1] + 0.049)


def _launched(room: LiveRoom) -> tuple[int, str]:
    service = room.actions()
    action = service.create(
        ActionDraft(
            type=ActionType.MISSING_PERSON,
            headline="Vermist: Noah (8), blauwe jas",
            description="Noah is sinds 15:00 weg bij het Volkspark.",
            instruction="Ziet u hem? Bel 112.",
            area={"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 2000}},
            expires_at=room.runtime.clock() + timedelta(hours=2),
        ),
        actor="test",
        created_by="api",
    )
    assert action.id is not None
    service.launch(action.id, actor="test", runs_from_launch=False)
    return action.id, action.code


def test_an_operator_updates_widens_and_cancels_a_running_action(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    room = live_room
    east = seed_person(
        room.runtime.sessions, room.runtime.vault, room.runtime.clock(), at=EAST, channels=[ChannelKind.SMS]
    )
    east_number = east.addresses[ChannelKind.SMS]
    action_id, code = _launched(room)
    everyone = [*room.sms, *(f"whatsapp:{n}" for n in room.whatsapp)]
    for to in everyone:
        room.sent(to, 1)

    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL").new_page()
    _login(page, room.url, "olga")
    page.goto(f"{room.url}/controlroom/actions/{action_id}")
    expect(page.locator("#action-status")).to_have_text("actief")

    # An update: the same code, marked "Aanvulling", to the six the alert reached; none to the one outside.
    page.get_by_label("Wat is er nieuw?").fill("Noah is gezien bij het station, nu met een rode pet.")
    page.get_by_role("button", name="Aanvulling sturen").click()
    expect(page.locator(".flash")).to_have_text("Aanvulling 1 verstuurd naar 6 ontvangers.")
    expect(page.locator("#updates")).to_contain_text("nu met een rode pet")
    update = room.sent(room.sms[0], 2)[1]["Body"]
    assert update.startswith(f"Aanvulling Burgernet {code}: Noah is gezien bij het station")
    assert "Ziet u hem? Bel 112." in update
    for to in everyone:
        room.sent(to, 2)
    assert [m for m in room.fake.messages() if m["To"] == east_number] == []

    # A smaller circle is refused with the reason; a larger one alerts only the one newly inside.
    radius = page.get_by_label(re.compile("Nieuwe straal in meters"))
    radius.fill("1000")
    page.get_by_role("button", name="Gebied vergroten").click()
    expect(page.locator("#widen-error")).to_have_text(
        "De nieuwe cirkel moet de oude helemaal bevatten: kies een grotere straal."
    )
    page.get_by_label(re.compile("Nieuwe straal in meters")).fill("5000")
    page.get_by_role("button", name="Gebied vergroten").click()
    expect(page.locator(".flash")).to_have_text("Gebied vergroot: 1 nieuwe ontvangers.")
    [alert] = room.sent(east_number, 1)
    assert alert["Body"].startswith(f"Burgernet {code}: Vermist: Noah (8), blauwe jas.")
    shot(page, "action-evolve-1280")

    phone = browser.new_context(viewport={"width": 420, "height": 860}, locale="nl-NL").new_page()
    _login(phone, room.url, "olga")
    phone.goto(f"{room.url}/controlroom/actions/{action_id}")
    expect(phone.locator("#cancel-form")).to_be_visible()
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the live page scrolls sideways on a phone by {overflow}px"
    shot(phone, "action-evolve-420")

    # Cancelling needs the tick; then a correction goes to all seven, and the action is withdrawn.
    page.get_by_label("Reden (alleen voor het logboek)").fill("Verkeerde persoon: Noah was al thuis.")
    page.get_by_label("Deze actie is per ongeluk verstuurd").check()
    page.get_by_role("button", name="Annuleren en correctie versturen").click()
    expect(page.locator(".flash")).to_have_text("Actie geannuleerd: 7 correcties verstuurd.")
    expect(page.locator("#action-status")).to_have_text("ingetrokken")
    expect(page.locator("#update-form")).to_have_count(0)
    correction = room.sent(room.sms[0], 3)[2]["Body"]
    assert correction.startswith(f"Vergissing: negeer Burgernetactie {code}.")
    assert "Noah was al thuis" not in correction
    room.sent(east_number, 2)
    with room.runtime.sessions() as session:
        action = session.exec(select(Action).where(Action.id == action_id)).one()
        assert action.status is ActionStatus.CANCELLED
        assert action.area["circle"]["radius_m"] == 5000


def _click(page: Any, box: Any, fx: float, fy: float) -> None:
    """Click the map at a fraction of its size from its middle (fx, fy in -0.5..0.5)."""
    bounds = box.bounding_box()
    page.mouse.click(bounds["x"] + bounds["width"] * (0.5 + fx), bounds["y"] + bounds["height"] * (0.5 + fy))


@pytest.mark.parametrize("size", [(1280, 900), (420, 860)], ids=["desktop", "phone"])
def test_an_operator_widens_a_circle_to_a_polygon_drawn_on_the_live_map(
    live_room: LiveRoom, browser: Any, size: tuple[int, int]
) -> None:
    from playwright.sync_api import expect

    room = live_room
    action_id, _ = _launched(room)
    width, height = size
    page = browser.new_context(viewport={"width": width, "height": height}, locale="nl-NL").new_page()
    _login(page, room.url, "olga")
    page.goto(f"{room.url}/controlroom/actions/{action_id}")
    box = page.locator("#action-map")
    expect(box).to_have_attribute("data-base", "ready")
    expect(page.locator("#w-polygon-tools")).to_be_hidden()  # only once the polygon is chosen
    page.get_by_label("Veelhoek om het huidige gebied (tekenen op de kaart)").check()
    expect(page.locator("#w-polygon-tools")).to_be_visible()
    expect(page.locator("#w-circle-tools")).to_be_hidden()
    box.scroll_into_view_if_needed()

    # A small triangle inside the circle: refused, with the reason, the drawing kept.
    for fx, fy in ((-0.05, -0.05), (0.05, -0.05), (0.0, 0.05)):
        _click(page, box, fx, fy)
    expect(box).to_have_attribute("data-polygon", "3")
    page.locator("#w-polygon-tools").get_by_role("button", name="Sluiten").click()
    expect(box).to_have_attribute("data-polygon", "closed")
    page.get_by_role("button", name="Gebied vergroten").click()
    expect(page.locator("#widen-error")).to_contain_text(
        "een deel van het oude gebied valt buiten de veelhoek"
    )
    expect(page.get_by_label("Veelhoek om het huidige gebied (tekenen op de kaart)")).to_be_checked()
    box = page.locator("#action-map")
    expect(box).to_have_attribute("data-polygon", "closed")  # the drawing survives the round trip
    shot(page, f"widen-polygon-01-refused-{width}")

    # Cleared, zoomed out, and four corners well around the circle (clear of the map's controls at its
    # edges), closed on the first one.
    page.locator("#w-polygon-tools").get_by_role("button", name="Wissen").click()
    expect(box).to_have_attribute("data-polygon", "0")
    box.locator(".leaflet-control-zoom-out").click()
    box.scroll_into_view_if_needed()
    for fx, fy in ((-0.3, -0.3), (0.3, -0.3), (0.3, 0.3), (-0.3, 0.3)):
        _click(page, box, fx, fy)
    expect(box).to_have_attribute("data-polygon", "4")
    box.locator("path.corner-0").click(force=True)
    expect(box).to_have_attribute("data-polygon", "closed")
    expect(page.locator("#w-polygon-state")).to_have_text("Gesloten veelhoek met 4 hoekpunten")
    shot(page, f"widen-polygon-02-drawn-{width}")
    page.get_by_role("button", name="Gebied vergroten").click()
    expect(page.locator(".flash")).to_contain_text("Gebied vergroot:")
    expect(page.locator("#action-map path.area-polygon")).to_have_count(1)
    shot(page, f"widen-polygon-03-widened-{width}")
    with room.runtime.sessions() as session:
        action = session.exec(select(Action).where(Action.id == action_id)).one()
    assert len(action.area["polygon"]) == 5
    assert action.area["centre"] == {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1]}
