"""The control room in Debian's Chromium, on the whole app as `serve` runs it: log in, create, preview and
launch an action, watch the progress bar move as (fake) Twilio reports deliveries through signed webhooks,
see a tip sent through a signed Twilio webhook arrive without reloading, reply (the question reaches the
tipster by SMS, the answer joins the tip), close; a coordinator cannot see tips; a POST without a CSRF
token is refused."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

import pytest

from storage.vocabulary import ChannelKind
from tests.browser.conftest import (
    ENSCHEDE,
    SCREENSHOTS,
    LiveRoom,
    post_to_another_worker,
    receipt_form,
    shot,
    twilio_form,
)
from tests.controlroom.conftest import PASSWORD

pytestmark = pytest.mark.browser
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
STATUS = "/webhooks/twilio/status"
XSS = "<script>alert(1)</script>"


def _login(page: Any, url: str, user: str) -> None:
    page.goto(f"{url}/controlroom/login")
    page.get_by_label("Gebruikersnaam").fill(user)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Inloggen").click()


def _count(page: Any, channel: str, stage: str) -> Any:
    return page.locator(f'#progress dd[data-channel="{channel}"] [data-count="{stage}"]')


def _minutes_ago(room: LiveRoom, minutes: int) -> str:
    """A wall-clock time a little while ago, as a tipster writes it ("om 14:25")."""
    then = room.runtime.clock() - timedelta(minutes=minutes)
    return then.astimezone(ZoneInfo(room.settings.timezone)).strftime("%H:%M")


def test_operator_runs_an_action_from_launch_to_close(live_room: LiveRoom, browser: Any) -> None:
    from playwright.sync_api import expect

    room = live_room
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="nl-NL")
    urls: list[str] = []
    context.on("request", lambda request: urls.append(unquote_plus(request.url)))
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{room.url}/controlroom/login")
    shot(page, "01-login")
    _login(page, room.url, "olga")
    expect(page).to_have_url(re.compile(r"/controlroom/actions$"))
    shot(page, "02-actions")

    # The form: live SMS count, a postcode found by the place search sets the point and draws the circle.
    page.get_by_role("link", name="Nieuwe actie").click()
    page.get_by_label("Kop (kort: wat is er gebeurd)").fill("Vermist: jongen (8) in rode jas")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    expect(page.locator("#counter")).to_contain_text("1 sms-deel")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets. " * 6)
    expect(page.locator("#counter")).to_contain_text("2 sms-deel")
    page.get_by_label("Omschrijving (signalement, voertuig)").fill("Tim, 1.30 m, blond, blauwe fiets.")
    page.get_by_label("Zoek een plaats, straat of postcode").fill("7511")
    page.get_by_role("button", name="Zoek", exact=True).click()
    expect(page.locator("#lookup-result")).to_contain_text("Enschede")
    expect(page.locator("#pick-map path.picked-point")).to_have_count(1)
    shot(page, "03-new-action")
    page.get_by_role("button", name="Bekijk ontvangers en kosten").click()

    # The preview: recipients per channel and the cost, launch only after the confirmation.
    expect(page.locator("#preview-total")).to_have_text("6")
    expect(page.locator('#preview-table td[data-channel="sms"]')).to_have_text("4")
    expect(page.locator('#preview-table td[data-channel="whatsapp"]')).to_have_text("2")
    shot(page, "04-preview")
    assert room.fake.messages() == []  # nothing leaves before the launch
    page.get_by_label(re.compile("Ik heb de tekst en het gebied gecontroleerd")).check()
    page.get_by_role("button", name="Start de actie").click()
    expect(page.locator("#action-status")).to_have_text("actief")
    action_id = int(page.url.rsplit("/", 1)[1])
    code = page.locator("h1").inner_text().split(" · ")[0]
    assert re.fullmatch(r"BN-[0-9A-Z]+", code), code

    # The running dispatcher hands the alerts to (fake) Twilio: SMS with the text, WhatsApp as a template.
    expect(_count(page, "sms", "sent")).to_have_text("4")
    expect(_count(page, "whatsapp", "sent")).to_have_text("2")
    for phone in room.sms:
        [alert] = room.sent(phone, 1)
        assert "Vermist: jongen (8) in rode jas" in alert["Body"]
        assert alert["StatusCallback"] == room.settings.public_base_url + STATUS
    for phone in room.whatsapp:
        [alert] = room.sent("whatsapp:" + phone, 1)
        assert alert["ContentSid"] == room.settings.whatsapp_template_default

    # Twilio reports through signed status callbacks: three SMS delivered (one still only sent), one
    # WhatsApp read, one undelivered. The bars move without a reload.
    for phone in room.sms[:3]:
        [sid] = room.sids(phone)
        assert room.post_signed(STATUS, receipt_form(sid, phone, "delivered")).status_code == 200
    read, lost = ("whatsapp:" + p for p in room.whatsapp)
    assert room.post_signed(STATUS, receipt_form(room.sids(read)[0], read, "read")).status_code == 200
    failed = receipt_form(room.sids(lost)[0], lost, "undelivered", ErrorCode="63003")
    assert room.post_signed(STATUS, failed).status_code == 200
    expect(_count(page, "sms", "delivered")).to_have_text("3")
    expect(_count(page, "sms", "sent")).to_have_text("1")
    expect(_count(page, "whatsapp", "delivered")).to_have_text("1")
    expect(_count(page, "whatsapp", "failed")).to_have_text("1")
    sms_bar = page.locator('#progress dd[data-channel="sms"] rect[data-stage="delivered"]')
    expect(sms_bar).to_have_attribute("width", "75.00")

    # A tipster who got the alert by SMS texts the code and what they saw (and a script, which must stay
    # text): the tip shows on the open page, structured fields above the raw text.
    tipster = room.sms[0]
    seen = _minutes_ago(room, 5)
    text = f"{code} Jongen in rode jas gezien om {seen} bij het station {XSS}, fietste richting centrum"
    tipped = room.post_signed("/webhooks/twilio/sms", twilio_form(ChannelKind.SMS, tipster, text))
    assert tipped.status_code == 200
    tip = page.locator("#tip-1")
    expect(tip).to_be_visible()
    expect(tip.locator("dd").first).to_have_text(f"{seen} (‘om {seen}’)")  # the time, and the words for it
    expect(tip.locator("dl")).to_contain_text("station")
    expect(tip.locator("dl")).to_contain_text("centrum")
    expect(tip.locator(".raw")).to_contain_text(XSS)  # shown as text, not run
    expect(tip.locator("h3")).to_contain_text("sms")
    thanks = room.runtime.catalogue.render("nl", "tip.thanks", code=code)
    assert room.sent(tipster, 2)[-1]["Body"] == thanks

    # The server goes away: the banner says so; a tip stored meanwhile (by another worker on the same
    # database: a WhatsApp tip with a shared location) shows after the reconnect, once, newest on top.
    banner = page.locator("#connection")
    expect(banner).to_be_hidden()
    room.served.stop()
    expect(banner).to_be_visible()
    expect(banner).to_have_text("Verbinding verbroken, opnieuw verbinden…")
    second = twilio_form(
        ChannelKind.WHATSAPP,
        room.whatsapp[0],
        f"{code} om {_minutes_ago(room, 1)} stond hij bij de Jumbo",
        Latitude=f"{ENSCHEDE[0] + 0.001:.4f}",
        Longitude=f"{ENSCHEDE[1] - 0.003:.4f}",
    )
    assert post_to_another_worker(room, "/webhooks/twilio/whatsapp", second).status_code == 200
    room.served.start()
    expect(page.locator("#tip-2")).to_be_visible(timeout=15_000)
    expect(banner).to_be_hidden()
    expect(page.locator("#tips > li")).to_have_count(2)  # nothing lost, nothing doubled
    expect(page.locator("#tips > li").first).to_have_id("tip-2")  # newest on top
    expect(page.locator("#tip-count")).to_have_text("2")
    expect(page.locator("#tip-2 .raw")).to_contain_text("Jumbo")
    expect(page.locator("#action-map path.tip-2")).to_have_count(1)
    shot(page, "05-live-action")

    # Reply to the tipster: the dispatcher sends the question by SMS; the answer joins the tip.
    tip.get_by_label("Antwoord aan de melder").fill("Welke kant fietste hij op?")
    tip.get_by_role("button", name="Verstuur").click()
    expect(tip.locator(".status")).to_contain_text("verstuurd")
    question = room.runtime.catalogue.render(
        "nl", "tip.operator_question", code=code, question="Welke kant fietste hij op?"
    )
    assert room.sent(tipster, 3)[-1]["Body"] == question
    answer = twilio_form(ChannelKind.SMS, tipster, "Over de Hengelosestraat, naar het Volkspark")
    assert room.post_signed("/webhooks/twilio/sms", answer).status_code == 200
    added = room.runtime.catalogue.render("nl", "tip.answer_added", code=code)
    assert room.sent(tipster, 4)[-1]["Body"] == added
    # Pushed to the open page (tip_updated): the whole conversation, the operator's question in it.
    expect(tip.locator(".thread li")).to_have_count(3)
    expect(tip.locator(".thread li.out")).to_contain_text("Welke kant fietste hij op?")
    expect(tip.locator(".thread li").last).to_contain_text("Hengelosestraat")
    expect(page.locator("#tips > li")).to_have_count(2)
    tip.get_by_role("button", name="Nuttig", exact=True).click()
    expect(tip).to_have_class(re.compile(r"\buseful\b"))
    expect(tip.locator(".verdict")).to_have_text("Beoordeeld: nuttig")

    # A POST without the CSRF token is refused, even with the session cookie.
    refused = context.request.post(
        f"{room.url}/controlroom/actions/{action_id}/close",
        form={"outcome": "found", "closing_text": "zonder token"},
    )
    assert refused.status == 403

    # Close with an outcome and a closing text, after the confirmation that counts the recipients.
    page.get_by_label("Gevonden", exact=True).check()
    page.get_by_label(re.compile("^Afloopbericht")).fill("Tim is gevonden. Dank voor het uitkijken!")
    page.get_by_role("button", name="Verder: controleer het afloopbericht").click()
    expect(page.locator("#close-audience")).to_contain_text("Afloopbericht naar 5 deelnemers.")
    page.get_by_role("button", name="Sluit af en verstuur nu").click()
    expect(page.locator("#action-status")).to_have_text("afgesloten")
    shot(page, "06-closed-action")
    assert any("Tim is gevonden" in m.get("Body", "") for m in room.sent(room.sms[1], 2))
    assert dialogs == []  # the tipster's script never ran
    context.close()
    # The server logs every URL: the alert's texts (they name the person sought), the place searched and
    # the tipsters' numbers travel in bodies only.
    private = [
        "Tim",
        "rode jas",
        "blauwe fiets",
        "7511",
        *(p.lstrip("+")[-9:] for p in room.sms + room.whatsapp),
    ]
    assert len(urls) > 20
    assert [u for u in urls if any(word in u for word in private)] == []

    if os.environ.get("UPDATE_DOCS_IMG") == "1":  # refresh the README's pictures only when asked
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        for name in ("04-preview",):  # the live page's picture comes from scripts/screenshots.py
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
