"""A dispatch system's CAP Update of a running action, confirmed in Debian's Chromium on the whole app: the
open live page says it came in; the waiting update stands above everything (1280×900 and 420×860),
nothing is sent until the operator clicks "Versturen"; then the six the alert reached get it, and the
public page shows it on a phone, newest first. A dispatch system's Cancel of its own Alert, still a draft
here, withdraws it from under an operator's open preview: starting it then sends nothing."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.api.cap import cap_sender
from bot.cap.document import CapChangeMessage, read_cap
from bot.services.cap_changes import CapChanges
from storage.actions import get_action
from storage.models import ActionOutcome, ActionUpdate, AuditEvent, CapChange, CapChangeStatus
from tests.actions.test_cap_changes import ALERT_REFERENCE, _message, draft_of_dispatch_alert
from tests.browser.conftest import LiveRoom, shot
from tests.browser.test_controlroom_browser import _login
from tests.browser.test_evolve_browser import _launched

pytestmark = pytest.mark.browser
NEWS = "Noah is gezien bij het station, met een rode pet."
INSTRUCTION = "Volg hem op afstand en bel 112."


def _changes(room: LiveRoom) -> CapChanges:
    """The CAP changes' use cases on the running app's storage, as the API builds them."""
    return CapChanges(actions=room.actions(), sender=cap_sender(room.settings))


def _update_from_dispatch(room: LiveRoom, action_id: int) -> int:
    """The dispatch system's CAP Update of our alert, as `POST /api/v1/cap` reads and stores it."""
    runtime = room.runtime
    changes = _changes(room)
    with runtime.sessions() as session:
        action = get_action(session, action_id=action_id)
    assert action.launched_at is not None
    sent = action.launched_at.replace(microsecond=0).isoformat()
    document = _message(
        "Update",
        f"{changes.sender},burgernet-{action.code},{sent}",
        identifier="MK-OOST-2026-0042-2",
        sent=sent,
        headline=action.headline,
        description=f"{action.description}\n\n{NEWS}",
        instruction=INSTRUCTION,
    )
    message = read_cap(document)
    assert isinstance(message, CapChangeMessage)
    change = changes.receive(message)
    assert change.id is not None
    return change.id


def test_an_operator_confirms_a_waiting_cap_update(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    room = live_room
    action_id, code = _launched(room)
    everyone = [*room.sms, *(f"whatsapp:{n}" for n in room.whatsapp)]
    for to in everyone:
        room.sent(to, 1)

    # The operator has the live page open when the Update comes in: the page offers the reload.
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL").new_page()
    _login(page, room.url, "olga")
    page.goto(f"{room.url}/controlroom/actions/{action_id}")
    expect(page.locator("#cap-arrived")).to_be_hidden()
    change_id = _update_from_dispatch(room, action_id)
    expect(page.locator("#cap-arrived")).to_be_visible()
    shot(page, "cap-arrived-1280")
    page.get_by_role("link", name="Pagina vernieuwen").click()
    card = page.locator(f"#cap-change-{change_id}")
    expect(card.get_by_role("heading")).to_have_text("Aanvulling via CAP wacht op bevestiging")
    expect(card.get_by_label("Tekst van de aanvulling")).to_have_value(NEWS)
    expect(card.get_by_label("Nieuwe instructie")).to_have_value(INSTRUCTION)
    # Above the tips and the map: the first thing the operator sees.
    assert card.bounding_box()["y"] < page.locator("#tips-h").bounding_box()["y"]
    expect(card).to_be_in_viewport()
    shot(page, "cap-change-1280")

    phone = browser.new_context(viewport={"width": 420, "height": 860}, locale="nl-NL").new_page()
    _login(phone, room.url, "olga")
    phone.goto(f"{room.url}/controlroom/actions/{action_id}")
    expect(phone.locator(f"#cap-change-{change_id}").get_by_role("button", name="Versturen")).to_be_visible()
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the live page scrolls sideways on a phone by {overflow}px"
    shot(phone, "cap-change-420")

    # Nothing went out while it waited.
    assert [len([m for m in room.fake.messages() if m["To"] == to]) for to in everyone] == [1] * 6
    card.get_by_role("button", name="Versturen").click()
    expect(page.locator(".flash")).to_have_text("Aanvulling 1 via CAP verstuurd naar 6 ontvangers.")
    expect(page.locator("#cap-changes")).to_have_count(0)
    expect(page.locator("#updates")).to_contain_text(NEWS)
    update = room.sent(room.sms[0], 2)[1]["Body"]
    assert update.startswith(f"Aanvulling Burgernet {code}: {NEWS}")
    assert INSTRUCTION in update
    for to in everyone:
        room.sent(to, 2)
    with room.runtime.sessions() as session:
        change = session.get(CapChange, change_id)
        [row] = session.exec(select(ActionUpdate)).all()
        [event] = session.exec(select(AuditEvent).where(AuditEvent.event == "cap_change_confirmed")).all()
    assert change is not None and change.status is CapChangeStatus.SENT and change.update_no == 1
    assert (row.text, row.created_by, event.actor) == (NEWS, "operator:olga", "operator:olga")

    # The public page on a phone: the update under the alert, with its time, no name of who sent it.
    public = browser.new_context(viewport={"width": 420, "height": 860}, locale="nl-NL").new_page()
    public.goto(f"{room.url}/a/{code}")
    expect(public.locator("#updates-h")).to_have_text("Aanvullingen")
    expect(public.locator(".updates li")).to_have_count(1)
    expect(public.locator(".updates li").first).to_contain_text("Aanvulling 1 · ")
    expect(public.locator(".updates li").first).to_contain_text(NEWS)
    assert "olga" not in public.content()
    overflow = public.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the public page scrolls sideways on a phone by {overflow}px"
    shot(public, "action-page-updates-420")


def test_an_update_still_open_on_a_phone_after_a_colleague_closed_the_action_is_not_sent(
    live_room: LiveRoom, browser: Any
) -> None:
    from playwright.sync_api import expect

    room = live_room
    action_id, _ = _launched(room)
    everyone = [*room.sms, *(f"whatsapp:{n}" for n in room.whatsapp)]
    for to in everyone:
        room.sent(to, 1)
    change_id = _update_from_dispatch(room, action_id)
    phone = browser.new_context(viewport={"width": 420, "height": 860}, locale="nl-NL").new_page()
    _login(phone, room.url, "olga")
    # The page's live stream is cut, as on a phone that lost its connection: with it, the page reloads on
    # the close and the click below races that reload; without it, the page stays as the operator saw it.
    phone.route(f"**/controlroom/actions/{action_id}/stream*", lambda route: route.abort())
    phone.goto(f"{room.url}/controlroom/actions/{action_id}")
    card = phone.locator(f"#cap-change-{change_id}")
    expect(card.get_by_role("button", name="Versturen")).to_be_visible()

    # A colleague closes the action while the page is open: the waiting update lapses with it.
    _changes(room).actions.close(
        action_id, outcome=ActionOutcome.FOUND, closing_text="", actor="operator:cor"
    )
    for to in everyone:
        room.sent(to, 2)  # the closing
    card.get_by_role("button", name="Versturen").click()
    expect(phone.locator(".flash")).to_have_text(
        "De actie is afgelopen voordat dit CAP-bericht bevestigd was; er is niets verstuurd."
    )
    expect(phone.locator("#cap-changes")).to_have_count(0)
    shot(phone, "cap-change-lapsed-420")
    assert [len([m for m in room.fake.messages() if m["To"] == to]) for to in everyone] == [2] * 6
    with room.runtime.sessions() as session:
        change = session.get(CapChange, change_id)
        assert session.exec(select(ActionUpdate)).all() == []
    assert change is not None and change.status is CapChangeStatus.LAPSED


def test_a_dispatch_systems_cancel_withdraws_its_draft_from_under_an_operators_open_preview(
    live_room: LiveRoom, browser: Any
) -> None:
    from playwright.sync_api import expect

    room = live_room
    changes = _changes(room)
    draft, source = draft_of_dispatch_alert(room.runtime.clock() + timedelta(hours=2))
    action = changes.actions.create(draft, actor=f"cap:{source.sender}", created_by="cap", cap_alert=source)

    # An operator on a phone has the draft's preview open, ready to start it.
    phone = browser.new_context(viewport={"width": 420, "height": 860}, locale="nl-NL").new_page()
    _login(phone, room.url, "olga")
    phone.goto(f"{room.url}/controlroom/actions/{action.id}")
    expect(phone.get_by_role("button", name="Start de actie")).to_be_visible()

    # The dispatch system withdraws its Alert: the draft is cancelled at once, no operator needed.
    cancel = _message(
        "Cancel", ALERT_REFERENCE, identifier="MK-OOST-2026-0042-C", info=False, note="Vergissing."
    )
    message = read_cap(cancel)
    assert isinstance(message, CapChangeMessage)
    assert changes.receive(message).status is CapChangeStatus.SENT

    phone.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    phone.get_by_role("button", name="Start de actie").click()
    # Back on the action's page, which says why and shows it withdrawn.
    expect(phone.locator(".flash")).to_have_text("Deze actie is al gestart, afgesloten of ingetrokken.")
    expect(phone.locator("#action-status")).to_have_text("ingetrokken")
    expect(phone.get_by_role("button", name="Start de actie")).to_have_count(0)
    shot(phone, "cap-cancelled-draft-420")
    assert room.fake.messages() == []
