"""The control room under pressure, in Debian's Chromium on the whole app: new tips announce themselves
(count in the tab title, a beep that can be switched off and stays off, desktop notifications asked for
on a click), filters, a verdict that stays after the phone number is shown; closing asks for an outcome
and says how many get the closing message; a draft can be edited and deleted. Desktop and 420×860."""

from __future__ import annotations

import re
from typing import Any

import pytest

from storage.vocabulary import ChannelKind
from tests.browser.conftest import LiveRoom, shot, twilio_form
from tests.browser.test_controlroom_browser import _login

pytestmark = pytest.mark.browser
SIZES = [
    pytest.param({"width": 1280, "height": 900}, id="desktop"),
    pytest.param({"width": 420, "height": 860}, id="phone"),
]
# Counts the tones the page starts, so the test hears the beep without a sound card.
COUNT_BEEPS = """
window.__beeps = 0;
const start = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) { window.__beeps += 1; return start.apply(this, args); };
"""


def _draft(page: Any, url: str, headline: str = "Vermist: jongen (8) in rode jas") -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/controlroom/actions/new")
    page.get_by_label("Kop (kort: wat is er gebeurd)").fill(headline)
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    page.get_by_label("Zoek een plaats, straat of postcode").fill("7511")
    page.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
    expect(page.locator("#lookup-result")).to_contain_text("7511")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()


def _launch(page: Any, url: str) -> str:
    from playwright.sync_api import expect

    _draft(page, url)
    page.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    page.get_by_role("button", name="Start de actie").click()
    expect(page.locator("#action-status")).to_have_text("actief")
    return str(page.locator("h1").inner_text().split(" · ")[0])


def _tip(room: LiveRoom, sender: str, text: str) -> None:
    assert (
        room.post_signed("/webhooks/twilio/sms", twilio_form(ChannelKind.SMS, sender, text)).status_code
        == 200
    )


@pytest.mark.parametrize("viewport", SIZES)
def test_new_tips_are_hard_to_miss(live_room: LiveRoom, browser: Any, viewport: dict[str, int]) -> None:
    from playwright.sync_api import expect

    room = live_room
    context = browser.new_context(viewport=viewport, locale="nl-NL")
    context.grant_permissions(["notifications"], origin=room.url)
    context.add_init_script(COUNT_BEEPS)
    page = context.new_page()
    _login(page, room.url, "olga")
    code = _launch(page, room.url)
    title = page.title()
    assert not title.startswith("(")
    name = viewport["width"]

    # Tips column first: on a phone it is the first thing under the heading.
    tips_box = page.locator(".tips-card").bounding_box()
    progress_box = page.locator("#progress-h").bounding_box()
    assert tips_box is not None and progress_box is not None and tips_box["y"] < progress_box["y"]

    # Permission was granted to this browser before: the button says so instead of asking again.
    expect(page.locator("#notify-toggle")).to_have_text("Bureaubladmeldingen staan aan")

    _tip(
        room,
        room.sms[0],
        f"{code} zag net een man met rode jas bij de Hema in de Kalanderstraat richting station",
    )
    expect(page.locator("#tip-1")).to_be_visible()
    expect(page).to_have_title(f"(1) {title}")
    page.wait_for_function("window.__beeps > 0")
    _tip(room, room.sms[1], f"{code} nu net 5 min geleden bij het bankje op de Oude Markt")
    expect(page).to_have_title(f"(2) {title}")
    expect(page.locator("#tips > li").first).to_have_id("tip-2")  # newest on top
    shot(page, f"op-{name}-1-new-tips")

    # The sound goes off, and stays off after a reload.
    beeps = page.evaluate("window.__beeps")
    page.get_by_role("button", name="Geluid aan").click()
    expect(page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "false")
    _tip(room, room.sms[2], f"{code} fietser met blauwe fiets bij de Albert Heijn op de Van Heekplein")
    expect(page).to_have_title(f"(3) {title}")
    assert page.evaluate("window.__beeps") == beeps
    page.reload()
    expect(page.locator("#sound-toggle")).to_have_text("Geluid uit")
    expect(page).to_have_title(title)  # after a reload every tip on the page has been seen

    # Judge a tip, show the number: the verdict stays in view; the reply's Verstuur sits on its own row.
    first = page.locator("#tip-1")
    first.get_by_role("button", name="Nuttig", exact=True).click()
    expect(first.locator(".verdict")).to_have_text("Beoordeeld: nuttig")
    first.get_by_role("button", name=re.compile("Toon telefoonnummer")).click()
    expect(first.locator(".phone-number")).to_have_text(room.sms[0])
    expect(first.locator(".verdict")).to_have_text("Beoordeeld: nuttig")
    send = first.get_by_role("button", name="Verstuur").bounding_box()
    useful = first.get_by_role("button", name="Nuttig", exact=True).bounding_box()
    assert send is not None and useful is not None and send["y"] > useful["y"] + useful["height"]
    page.locator("#tip-3").get_by_role("button", name="Niet nuttig").click()
    expect(page.locator("#tip-3 .verdict")).to_have_text("Beoordeeld: niet nuttig")

    filters = page.locator("#tip-filters")
    filters.get_by_role("button", name="Nuttig", exact=True).click()
    expect(page.locator("#tips > li:visible")).to_have_count(1)
    expect(page.locator("#tips > li:visible")).to_have_id("tip-1")
    filters.get_by_role("button", name="Nieuw").click()
    expect(page.locator("#tips > li:visible")).to_have_id("tip-2")
    filters.get_by_role("button", name="Niet nuttig").click()
    expect(page.locator("#tips > li:visible")).to_have_id("tip-3")
    filters.get_by_role("button", name="Alle").click()
    expect(page.locator("#tips > li:visible")).to_have_count(3)

    # A tip arriving now counts in the title until the operator clicks into it.
    _tip(room, room.sms[3], f"{code} hij ging net de Hengelosestraat in")
    expect(page).to_have_title(f"(1) {title}")
    page.locator("#tip-4 .raw").click()
    expect(page).to_have_title(title)
    shot(page, f"op-{name}-2-judged")
    context.close()


@pytest.mark.parametrize("viewport", SIZES)
def test_close_asks_for_the_outcome_and_confirms_the_count(
    live_room: LiveRoom, browser: Any, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    room = live_room
    context = browser.new_context(viewport=viewport, locale="nl-NL")
    page = context.new_page()
    _login(page, room.url, "olga")
    _launch(page, room.url)
    for phone in room.sms:
        room.sent(phone, 1)  # every alert handed to Twilio: all six will get the closing
    for phone in room.whatsapp:
        room.sent("whatsapp:" + phone, 1)
    expect(page.locator('input[name="outcome"]:checked')).to_have_count(0)  # nothing preselected
    page.get_by_role("button", name="Verder: controleer het afloopbericht").click()
    expect(page.locator("#close-confirm-form")).to_have_count(0)  # the browser asks for an outcome first
    page.get_by_label("Zonder resultaat").check()
    page.get_by_label(re.compile("^Afloopbericht")).fill("Tim is nog niet gevonden; de actie stopt.")
    page.get_by_role("button", name="Verder: controleer het afloopbericht").click()
    expect(page.locator("#close-audience")).to_have_text("Afloopbericht naar 6 deelnemers.")
    expect(page.locator("#close-outcome")).to_have_text("Zonder resultaat")
    shot(page, f"op-{viewport['width']}-3-close-confirm")
    assert not any("nog niet gevonden" in m.get("Body", "") for m in room.fake.messages())
    page.get_by_role("button", name="Sluit af en verstuur nu").click()
    expect(page.locator("#action-status")).to_have_text("afgesloten")
    assert "nog niet gevonden" in room.sent(room.sms[0], 2)[-1]["Body"]
    context.close()


@pytest.mark.parametrize("viewport", SIZES)
def test_a_draft_is_edited_then_deleted(live_room: LiveRoom, browser: Any, viewport: dict[str, int]) -> None:
    from playwright.sync_api import expect

    room = live_room
    context = browser.new_context(viewport=viewport, locale="nl-NL")
    page = context.new_page()
    _login(page, room.url, "olga")
    _draft(page, room.url)
    page.get_by_role("link", name="Concept bewerken").click()
    headline = page.get_by_label("Kop (kort: wat is er gebeurd)")
    expect(headline).to_have_value("Vermist: jongen (8) in rode jas")
    headline.fill("Vermist: jongen (8) in groene jas")
    page.get_by_role("button", name="Opslaan en bekijk ontvangers").click()
    expect(page.locator("h2").first).to_have_text("Vermist: jongen (8) in groene jas")
    expect(page.locator("#preview-total")).to_have_text("6")
    page.get_by_text("Concept verwijderen").click()
    shot(page, f"op-{viewport['width']}-4-draft-delete")
    page.locator("#delete-confirm").check()
    page.get_by_role("button", name="Verwijder het concept").click()
    expect(page).to_have_url(re.compile(r"/controlroom/actions\?flash="))
    expect(page.locator(".flash")).to_contain_text("is verwijderd")
    expect(page.get_by_text("groene jas")).to_have_count(0)
    assert room.fake.messages() == []  # nothing was ever sent
    context.close()
