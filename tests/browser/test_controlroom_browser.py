"""The control room in Debian's Chromium: log in, create, preview and launch an action, watch the
progress bar move as deliveries are reported, see a tip arrive without reloading, reply, close;
a coordinator cannot see tips; a POST without a CSRF token is refused."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.clock import utcnow
from bot.dispatch import apply_status
from bot.messages import ChannelKind, DeliveryStatus, StatusUpdate
from storage.models import Delivery
from tests.browser.conftest import SCREENSHOTS, LiveRoom, shot
from tests.controlroom.conftest import PASSWORD

pytestmark = pytest.mark.browser
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def _login(page: Any, url: str, user: str) -> None:
    page.goto(f"{url}/controlroom/login")
    page.get_by_label("Gebruikersnaam").fill(user)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()


def _count(page: Any, channel: str, stage: str) -> Any:
    return page.locator(f'#progress dd[data-channel="{channel}"] [data-count="{stage}"]')


def test_operator_runs_an_action_from_launch_to_close(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    page = context.new_page()
    page.goto(f"{live_room.url}/controlroom/login")
    shot(page, "01-login")
    _login(page, live_room.url, "olga")
    expect(page).to_have_url(re.compile(r"/controlroom/actions$"))
    shot(page, "02-actions")

    # The form: live SMS count, a postcode fills the point, the radius draws the circle.
    page.get_by_role("link", name="Nieuwe actie").click()
    page.get_by_label("Kop (kort: wat is er gebeurd)").fill("Vermist: jongen (8) in rode jas")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    expect(page.locator("#counter")).to_contain_text("1 sms-deel")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets. " * 6)
    expect(page.locator("#counter")).to_contain_text("2 sms-deel")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    page.get_by_label("Postcode (vult het punt in)").fill("7511")
    page.get_by_role("button", name="Zoek postcode").click()
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    expect(page.locator("#pick-map g.area circle")).to_have_count(2)
    shot(page, "03-new-action")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()

    # The preview: recipients per channel and the cost, launch only after the confirmation.
    expect(page.locator("#preview-total")).to_have_text("6")
    expect(page.locator('#preview-table td[data-channel="telegram"]')).to_have_text("4")
    expect(page.locator('#preview-table td[data-channel="sms"]')).to_have_text("2")
    shot(page, "04-preview")
    page.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    page.get_by_role("button", name="Start de actie").click()
    expect(page.locator("#action-status")).to_have_text("actief")
    expect(_count(page, "telegram", "queued")).to_have_text("4")
    action_id = int(page.url.rsplit("/", 1)[1])

    # The fake providers take the messages, then report them delivered: the bars move without a reload.
    live_room.drain()
    expect(_count(page, "telegram", "sent")).to_have_text("4")
    expect(_count(page, "sms", "sent")).to_have_text("2")
    with live_room.sessions() as session:
        deliveries = list(session.exec(select(Delivery).order_by(Delivery.id)))  # type: ignore[arg-type]
    telegram = [d for d in deliveries if d.channel == ChannelKind.TELEGRAM]
    sms = [d for d in deliveries if d.channel == ChannelKind.SMS]
    for delivery in [*telegram, sms[0]]:  # every Telegram message and one of the two SMS
        assert delivery.provider_id
        apply_status(
            live_room.sessions,
            StatusUpdate(delivery.channel, delivery.provider_id, DeliveryStatus.DELIVERED),
            clock=utcnow,
        )
    expect(_count(page, "telegram", "delivered")).to_have_text("4")
    expect(_count(page, "sms", "delivered")).to_have_text("1")
    expect(_count(page, "sms", "sent")).to_have_text("1")
    delivered_bar = page.locator('#progress dd[data-channel="telegram"] rect[data-stage="delivered"]')
    expect(delivered_bar).to_have_attribute("width", "100.00")

    # A tip arrives while the page is open, structured fields above the raw text, a dot on the map.
    live_room.tips.add(
        action_id,
        "Jongen in rode jas gezien bij het station <script>alert(1)</script>, fietste richting centrum",
        location="Station Enschede",
        direction="richting centrum",
        seen_at="14:25",
        lat=52.2225,
        lon=6.8905,
        has_phone=True,
    )
    tip = page.locator("#tip-1")
    expect(tip).to_be_visible()
    expect(tip.locator("dd").first).to_have_text("14:25")
    expect(tip.locator(".raw")).to_contain_text("<script>alert(1)</script>")  # shown as text, not run
    expect(page.locator('#action-map g.tip-dot[data-tip="#1"]')).to_have_count(1)

    # The server goes away: the banner says so; a tip stored meanwhile shows after the reconnect.
    banner = page.locator("#connection")
    expect(banner).to_be_hidden()
    live_room.served.stop()
    expect(banner).to_be_visible()
    expect(banner).to_have_text("Verbinding verbroken, opnieuw verbinden…")
    live_room.tips.add(action_id, "Tweede tip: hij staat nu bij de Jumbo", location="Jumbo Oldenzaalsestraat")
    live_room.served.start()
    expect(page.locator("#tip-2")).to_be_visible(timeout=15_000)
    expect(banner).to_be_hidden()
    expect(page.locator("#tips > li")).to_have_count(2)  # nothing lost, nothing doubled
    expect(page.locator("#tips > li").first).to_have_id("tip-2")  # newest on top
    expect(page.locator("#tip-count")).to_have_text("2")
    shot(page, "05-live-action")

    # Reply to the tipster and mark the tip useful, in place.
    tip.get_by_label("Antwoord aan de melder").fill("Welke kant fietste hij op?")
    tip.get_by_role("button", name="Verstuur").click()
    expect(tip.locator(".status")).to_contain_text("verstuurd")
    assert live_room.tips.replies == [(1, "Welke kant fietste hij op?", "operator:olga")]
    tip.get_by_role("button", name="Bruikbaar", exact=True).click()
    expect(tip).to_have_class(re.compile(r"\buseful\b"))

    # A POST without the CSRF token is refused, even with the session cookie.
    refused = context.request.post(
        f"{live_room.url}/controlroom/actions/{action_id}/close",
        form={"outcome": "found", "closing_text": "zonder token"},
    )
    assert refused.status == 403

    # Close with an outcome and a closing text.
    page.get_by_label("Afloop", exact=True).select_option("found")
    page.get_by_label("Afloopbericht").fill("Tim is gevonden. Dank voor het uitkijken!")
    page.get_by_role("button", name="Sluit de actie af en verstuur het afloopbericht").click()
    expect(page.locator("#action-status")).to_have_text("afgesloten")
    shot(page, "06-closed-action")
    context.close()

    if os.environ.get("UPDATE_DOCS_IMG") == "1":  # refresh the README's pictures only when asked
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for name in ("04-preview", "05-live-action"):
            shutil.copyfile(SCREENSHOTS / f"{name}.png", DOCS_IMG / f"controlroom-{name[3:]}.png")

def test_coordinator_sees_figures_but_never_tips(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    _login(page, live_room.url, "cor")
    expect(page).to_have_url(re.compile(r"/controlroom/figures$"))
    expect(page.locator("#participants-table")).to_contain_text("Enschede")
    expect(page.get_by_role("link", name="Acties")).to_have_count(0)
    shot(page, "07-figures-coordinator")
    response = page.goto(f"{live_room.url}/controlroom/actions")
    assert response is not None and response.status == 403
    stream = context.request.get(f"{live_room.url}/controlroom/actions/1/stream")
    assert stream.status == 403
    context.close()


def test_keyboard_only_login_and_english(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(f"{live_room.url}/controlroom/login")
    page.bring_to_front()
    page.locator("#username").focus()
    page.keyboard.press("Shift+Tab")  # backwards: the language button, then the skip link
    expect(page.get_by_role("button", name="English")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # the language switch, by keyboard
    expect(page.locator("h1")).to_have_text("Log in")
    expect(page.locator("#username")).to_be_focused()  # autofocus on the form
    page.keyboard.type("olga")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Actions")
    page.close()
