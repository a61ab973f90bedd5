"""Four eyes and exercises in Debian's Chromium on the whole app: an operator ticks "exercise" and asks
to launch; a second operator sees the waiting launch in a banner on every page and approves it; the
exercise reaches only who opted in. Desktop and 420×860."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlmodel import col, select

from storage.db import transaction
from storage.models import Action, ActionStatus, Delivery, OperatorRole, Participant
from storage.operators import create_operator
from storage.regions import ANY_TYPE, EVERYWHERE, grant_everywhere, set_approval_rule
from tests.browser.conftest import LiveRoom, shot
from tests.browser.test_controlroom_browser import _login
from tests.controlroom.conftest import PASSWORD, cheap_hasher

pytestmark = pytest.mark.browser
SIZES = [
    pytest.param({"width": 1280, "height": 900}, id="desktop"),
    pytest.param({"width": 420, "height": 860}, id="phone"),
]


def _second_operator_and_four_eyes(room: LiveRoom) -> None:
    runtime = room.runtime
    now = runtime.clock()
    with transaction(runtime.sessions) as session:
        bram = create_operator(
            session,
            username="bram",
            password=PASSWORD,
            role=OperatorRole.OPERATOR,
            now=now,
            hasher=cheap_hasher(),
        )
        grant_everywhere(session, operator=bram, now=now)
        set_approval_rule(session, region_name=EVERYWHERE, action_type=ANY_TYPE, required=True)
        # One of the six people near Enschede takes part in exercises.
        first = session.exec(select(Participant).order_by(col(Participant.id))).first()
        assert first is not None
        first.exercises = True
        session.add(first)


@pytest.mark.parametrize("viewport", SIZES)
def test_an_exercise_waits_for_a_second_operator_who_approves_it_from_the_banner(
    live_room: LiveRoom, browser: Any, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    room = live_room
    _second_operator_and_four_eyes(room)
    name = viewport["width"]

    asker = browser.new_context(viewport=viewport, locale="nl-NL").new_page()
    _login(asker, room.url, "olga")
    asker.goto(f"{room.url}/controlroom/actions/new")
    asker.get_by_label("Kop (kort: wat is er gebeurd)").fill("Vermist: jongen (8) in rode jas")
    asker.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    asker.get_by_label("Zoek een plaats, straat of postcode").fill("7511")
    asker.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
    expect(asker.locator("#lookup-result")).to_contain_text("7511")
    expect(asker.locator("#counter")).not_to_be_empty()
    asker.get_by_label(re.compile("Oefening \\(alleen voor deelnemers")).check()
    asker.get_by_role("button", name="Bekijk ontvangers en kosten").click()

    # The preview says it is an exercise, counts only the one who opted in, and shows the OEFENING text.
    expect(asker.locator("#exercise-badge")).to_have_text("oefening")
    expect(asker.locator("#preview-total")).to_have_text("1")
    expect(asker.locator("p.raw")).to_contain_text("OEFENING: Burgernet")
    asker.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    asker.get_by_role("button", name="Start de actie").click()
    expect(asker.locator(".flash")).to_contain_text("een tweede operator moet goedkeuren")
    expect(asker.locator("#approval-asked")).to_contain_text("Gevraagd door olga om")
    expect(asker.locator("#approve")).to_have_count(0)  # not one's own request
    expect(asker.locator("#approvals")).to_have_count(0)  # the banner is for the others
    shot(asker, f"approval-asked-{name}")
    code = asker.locator("h1").inner_text().split(": ", 1)[1].split(" · ")[0]

    approver = browser.new_context(viewport=viewport, locale="nl-NL").new_page()
    _login(approver, room.url, "bram")
    approver.goto(f"{room.url}/controlroom/figures")
    banner = approver.locator("#approvals")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Wacht op uw goedkeuring (1)")
    expect(banner.locator("a")).to_contain_text(code)
    box = banner.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1
    shot(approver, f"approval-banner-{name}")
    approver.goto(f"{room.url}/controlroom/actions")
    expect(approver.locator("#waiting")).to_contain_text(code)
    expect(approver.locator("#waiting")).to_contain_text("wacht op goedkeuring")
    banner.locator("a").first.click()
    expect(approver.locator("#approve")).to_be_visible()
    shot(approver, f"approval-approve-{name}")
    approver.locator("#approve").click()
    expect(approver.locator("#action-status")).to_have_text("actief")
    expect(approver.locator("#approvals")).to_have_count(0)

    with room.runtime.sessions() as session:
        action = session.exec(select(Action).where(Action.code == code)).one()
        assert (action.status, action.exercise, action.approved_by) == (
            ActionStatus.ACTIVE,
            True,
            "operator:bram",
        )
        assert len(session.exec(select(Delivery).where(Delivery.action_id == action.id)).all()) == 1


@pytest.mark.parametrize("viewport", SIZES)
def test_an_admin_sets_regions_members_and_four_eyes_on_the_accounts_page(
    live_room: LiveRoom, browser: Any, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    room = live_room
    with transaction(room.runtime.sessions) as session:
        ada = create_operator(
            session, username="ada", password=PASSWORD, role=OperatorRole.ADMIN, now=room.runtime.clock(),
            hasher=cheap_hasher(),
        )  # fmt: skip
        grant_everywhere(session, operator=ada, now=room.runtime.clock())
    page = browser.new_context(viewport=viewport, locale="nl-NL").new_page()
    _login(page, room.url, "ada")
    page.goto(f"{room.url}/controlroom/operators")
    form = page.locator("#region-form")
    form.get_by_label("Regio").fill("Twente")
    form.get_by_label("Gemeenten").fill("Enschede, 0164")
    form.get_by_role("button", name="Regio opslaan").click()
    expect(page.locator(".flash")).to_have_text("Regio Twente opgeslagen.")
    expect(page.locator("#regions tbody")).to_contain_text("Enschede, Hengelo (O.)")

    olga = page.locator("section.account", has_text="olga")
    olga.locator("summary", has_text="Regio's instellen").click()
    olga.get_by_label("Heel Nederland").uncheck()
    olga.get_by_label("Twente").check()
    olga.get_by_role("button", name="Regio's opslaan").click()
    expect(page.locator(".flash")).to_have_text("Regio's van olga opgeslagen.")
    expect(page.locator("section.account", has_text="olga").locator(".regions-of")).to_have_text(
        "Mag uitgeven in: Twente"
    )

    four = page.locator("#four-eyes-form")
    four.get_by_label("Regio").select_option("Twente")
    four.get_by_label("Soort").select_option("robbery")
    four.get_by_role("button", name="Vier ogen opslaan").click()
    expect(page.locator(".flash")).to_have_text("Vier ogen voor Twente opgeslagen.")
    expect(page.locator("#regions tbody tr", has_text="Twente")).to_contain_text("Overval")
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is wider than the screen: {width}"
    shot(page, f"regions-admin-{viewport['width']}")
