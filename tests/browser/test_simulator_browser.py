"""The simulator page in Debian's Chromium, at desktop size and at phone size (420×860), on the whole app as
`serve` runs it with every channel simulated: the input stays in view, each message shows its time (and
on SMS its parts), the counter counts as you type, a reload (and an alert sent while the page was closed)
keeps the conversation, a reset clears it, Telegram's "Deel mijn nummer" shares a phone number, and no
request carries a phone number in its URL."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest

from bot.app import create_app
from bot.channels.simulator import DEFAULT_SENDERS, DEFAULT_TELEGRAM_PHONE
from bot.config import load_settings
from bot.messages import OutgoingMessage
from bot.runtime import Runtime, build_runtime
from storage.crypto import new_data_key
from storage.vocabulary import ChannelKind
from tests.browser.conftest import SCREENSHOTS, Served, _listening, _need_chromium, _until, shot

pytestmark = pytest.mark.browser
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
DESKTOP = {"width": 1280, "height": 800}
PHONE_SIZE = {"width": 420, "height": 860}
SMS_PHONE = DEFAULT_SENDERS[ChannelKind.SMS]
TELEGRAM_CHAT = DEFAULT_SENDERS[ChannelKind.TELEGRAM]
ALERT = "Burgernet: vermist in Enschede, Sanne (8), rode jas. Gezien? Antwoord op dit bericht of bel 112."


@dataclass
class SimulatorApp:
    """The running app with only simulated channels."""

    url: str
    runtime: Runtime
    served: Served


@pytest.fixture
def simulator_app(database_url: str) -> Iterator[SimulatorApp]:
    _need_chromium()
    with contextlib.ExitStack() as stack:
        sock = _listening(0)
        stack.callback(sock.close)
        settings = load_settings(
            database_url=database_url,
            data_key=new_data_key(),
            public_base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            telegram_bot_token=None,
            twilio_account_sid=None,
            twilio_auth_token=None,
            simulator=True,
            dispatch_poll_interval_s=0.05,
            scheduler_leader_poll_seconds=0.05,
        )
        runtime = build_runtime(settings, run_migrations=False)
        served = Served(create_app(runtime), runtime, sock)
        stack.callback(served.close)
        served.start()
        app = SimulatorApp(url=f"http://127.0.0.1:{served.port}", runtime=runtime, served=served)
        _until(lambda: httpx.get(f"{app.url}/healthz").status_code == 200, "the app is not healthy")
        yield app


def _say(page: Any, text: str) -> None:
    box = page.get_by_label("bericht")
    box.fill(text)
    box.press("Enter")


def _answered(page: Any, text: str) -> None:
    """Say something and wait until it shows, followed by the bot's answer (one message or more)."""
    mine = page.locator("#log .msg.me").count()
    _say(page, text)
    page.wait_for_function(
        """n => { const all = [...document.querySelectorAll('#log .msg')];
                  return all.filter(e => e.classList.contains('me')).length > n
                      && all[all.length - 1].classList.contains('bot'); }""",
        arg=mine,
    )


def _in_view(page: Any, locator: Any) -> bool:
    box = locator.bounding_box()
    viewport = page.viewport_size
    return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"]


@pytest.mark.parametrize("size", [DESKTOP, PHONE_SIZE], ids=["desktop", "phone"])
def test_a_conversation_survives_reload_and_shows_times_and_parts(
    simulator_app: SimulatorApp, browser: Any, size: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    app = simulator_app
    context = browser.new_context(viewport=size, locale="nl-NL", timezone_id="Europe/Amsterdam")
    urls: list[str] = []
    context.on("request", lambda request: urls.append(request.url))
    page = context.new_page()
    page.goto(f"{app.url}/simulator")
    log = page.get_by_role("log")

    # One header row; the input and its button in view without scrolling.
    assert page.locator(".bar").bounding_box()["height"] < 60
    assert _in_view(page, page.get_by_label("bericht"))
    assert _in_view(page, page.get_by_role("button", name="Stuur"))

    _say(page, "AANMELDEN")
    mine = log.locator(".msg.me").first
    expect(mine).to_contain_text("AANMELDEN")
    expect(mine.locator(".meta")).to_have_text(re.compile(r"^\d\d:\d\d · 1 sms-deel$"))
    expect(log.locator(".msg.bot").first.locator(".meta")).to_have_text(re.compile(r"^\d\d:\d\d · \d sms-de"))
    expect(page.get_by_role("button", name="JA")).to_be_visible()

    # The counter under the input, as the cost report counts.
    page.get_by_label("bericht").fill("a" * 161)
    expect(page.locator("#counter")).to_have_text("2 sms-delen · 161/306 GSM-7")
    page.get_by_label("bericht").fill("Gezien 🚲")
    expect(page.locator("#counter")).to_contain_text("1 sms-deel · ")
    expect(page.locator("#counter")).to_contain_text("UCS-2")
    page.get_by_label("bericht").fill("")

    # The page closed; meanwhile the bot sends an alert. Back on the page: both sides and the alert.
    page.close()
    alert = OutgoingMessage(channel=ChannelKind.SMS, recipient=SMS_PHONE, text=ALERT)
    app.served.run(app.runtime.simulator.send(alert))  # in the server's loop, which owns the mailbox
    page = context.new_page()
    page.goto(f"{app.url}/simulator")
    log = page.get_by_role("log")
    expect(log.locator(".msg.me").first).to_contain_text("AANMELDEN")
    expect(log.locator(".msg.bot").last).to_contain_text("vermist in Enschede")
    expect(log.locator(".msg.bot").last.locator(".meta")).to_contain_text("1 sms-deel")
    page.reload()
    expect(page.get_by_role("log").locator(".msg.me").first).to_contain_text("AANMELDEN")
    assert _in_view(page, page.get_by_label("bericht"))
    name = "desktop" if size is DESKTOP else "phone"
    shot(page, f"simulator-sms-{name}")

    # Reset: the conversation is gone, also after a reload.
    page.get_by_role("button", name="Wissen").click()
    expect(page.get_by_role("log").locator(".msg")).to_have_count(0)
    page.reload()
    expect(page.get_by_role("log")).to_contain_text("Nog geen berichten")
    expect(page.get_by_role("log").locator(".msg")).to_have_count(0)

    assert urls and not [u for u in urls if SMS_PHONE.lstrip("+") in u or "31612" in u]
    context.close()


def test_a_message_typed_while_wissen_is_under_way_waits_for_it(
    simulator_app: SimulatorApp, browser: Any
) -> None:
    from playwright.sync_api import Route, expect

    context = browser.new_context(viewport=PHONE_SIZE, locale="nl-NL", timezone_id="Europe/Amsterdam")
    page = context.new_page()
    page.goto(f"{simulator_app.url}/simulator")
    _answered(page, "hallo")
    held: list[Route] = []

    def hold(route: Route) -> None:
        held.append(route)

    page.route("**/simulator/reset", hold)
    page.get_by_role("button", name="Wissen").click()
    _say(page, "AANMELDEN")
    # The reset is still on its way while the message is typed (a slow server): the page must not post
    # the message first, or the reset that follows wipes it.
    page.wait_for_timeout(500)
    assert len(held) == 1
    held[0].continue_()
    log = page.get_by_role("log")
    expect(log.locator(".msg.me")).to_have_count(1)
    expect(log.locator(".msg.me").first).to_contain_text("AANMELDEN")
    expect(log.locator(".msg.bot")).to_have_count(1)
    expect(log.locator(".msg.bot").first).to_contain_text("16+")
    context.close()


@pytest.mark.parametrize("size", [DESKTOP, PHONE_SIZE], ids=["desktop", "phone"])
def test_telegram_shares_a_phone_number_in_its_own_look(
    simulator_app: SimulatorApp, browser: Any, size: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    app = simulator_app
    context = browser.new_context(viewport=size, locale="nl-NL", timezone_id="Europe/Amsterdam")
    page = context.new_page()
    page.goto(f"{app.url}/simulator")
    sms_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.get_by_role("tab", name="WhatsApp").click()
    whatsapp_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.get_by_role("tab", name="Telegram").click()
    expect(page.get_by_role("tab", name="Telegram")).to_have_attribute("aria-selected", "true")
    telegram_background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert len({sms_background, whatsapp_background, telegram_background}) == 3
    expect(page.get_by_label("afzender")).to_have_value(TELEGRAM_CHAT)
    expect(page.get_by_label("nummer bij Telegram")).to_have_value(DEFAULT_TELEGRAM_PHONE)
    assert page.locator(".bar").bounding_box()["height"] < 60

    sent: list[dict[str, Any]] = []
    page.on(
        "request",
        lambda r: sent.append(r.post_data_json) if r.url.endswith("/simulator/messages") else None,
    )
    for text in ["/start", "JA", "OVERSLAAN", "7511 AB 12", "JA"]:
        _answered(page, text)
    page.get_by_label("nummer bij Telegram").fill("+31687654321")
    page.get_by_label("nummer bij Telegram").press("Tab")
    page.get_by_role("button", name="Deel mijn nummer").click()
    shared = page.get_by_role("log").locator(".msg.me").last
    expect(shared).to_contain_text("Contact gedeeld: +31687654321")
    assert sent[-1]["contact_phone"] == "+31687654321" and sent[-1]["sender"] == TELEGRAM_CHAT
    # The bot took the number and asks the next question (the channel for alerts).
    expect(page.get_by_role("button", name="Telegram", exact=True)).to_be_visible()
    assert _in_view(page, page.get_by_label("bericht"))
    name = "desktop" if size is DESKTOP else "phone"
    shot(page, f"simulator-telegram-{name}")
    context.close()


def test_docs_screenshots(simulator_app: SimulatorApp, browser: Any) -> None:
    """The README's pictures of the simulator, at desktop and at phone size."""
    from playwright.sync_api import expect

    app = simulator_app
    for size, target in ((DESKTOP, "simulator.png"), (PHONE_SIZE, "simulator-phone.png")):
        context = browser.new_context(viewport=size, locale="nl-NL", timezone_id="Europe/Amsterdam")
        page = context.new_page()
        page.goto(f"{app.url}/simulator")
        page.get_by_role("button", name="Wissen").click()
        expect(page.get_by_role("log").locator(".msg")).to_have_count(0)
        # Sent at once: the page holds it until the reset has answered, or the reset would wipe it.
        for text in ["AANMELDEN", "JA", "Sanne", "7511 AB 12", "JA"]:
            _answered(page, text)
        tip = "Ik zag een man in een rode jas richting het station lopen"
        page.get_by_label("bericht").fill(tip)
        expect(page.locator("#counter")).to_have_text(f"1 sms-deel · {len(tip)}/160 GSM-7")
        # The README's pictures are refreshed only when asked; every run keeps its own copy.
        out = DOCS_IMG if os.environ.get("UPDATE_DOCS_IMG") == "1" else SCREENSHOTS
        out.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out / target))
        context.close()


PRIVATE_NUMBER = "+31687650001"
PRIVATE_NAME = "Sanne de Vries"
PRIVATE_POSTCODE = "7511 AB"


@pytest.mark.parametrize("size", [DESKTOP, PHONE_SIZE], ids=["desktop", "phone"])
def test_no_personal_data_in_any_url_on_any_channel(
    simulator_app: SimulatorApp, browser: Any, size: dict[str, int]
) -> None:
    """A whole sign-up, MIJN GEGEVENS, a reload and a reset on each channel with a number typed into the
    page: the number, name and postcode travel in request bodies, never in a URL the server logs."""
    from playwright.sync_api import expect

    app = simulator_app
    context = browser.new_context(viewport=size, locale="nl-NL", timezone_id="Europe/Amsterdam")
    urls: list[str] = []
    bodies: list[str] = []
    context.on("request", lambda request: (urls.append(request.url), bodies.append(request.post_data or "")))
    page = context.new_page()
    page.goto(f"{app.url}/simulator")
    for tab, sender in (("SMS", PRIVATE_NUMBER), ("WhatsApp", PRIVATE_NUMBER), ("Telegram", "555000111")):
        page.get_by_role("tab", name=tab).click()
        page.get_by_label("afzender").fill(sender)
        page.get_by_label("afzender").press("Tab")
        if tab == "Telegram":
            page.get_by_label("nummer bij Telegram").fill(PRIVATE_NUMBER)
            page.get_by_label("nummer bij Telegram").press("Tab")
            for text in ["/start", "JA", PRIVATE_NAME, f"{PRIVATE_POSTCODE} 12", "JA"]:
                _answered(page, text)
            page.get_by_role("button", name="Deel mijn nummer").click()
            expect(page.get_by_role("log").locator(".msg.me").last).to_contain_text(PRIVATE_NUMBER)
            expect(page.get_by_role("button", name="Telegram", exact=True)).to_be_visible()
            _answered(page, "Telegram")
        else:
            for text in ["AANMELDEN", "JA", PRIVATE_NAME, f"{PRIVATE_POSTCODE} 12", "JA", "JA", tab]:
                _answered(page, text)
        _answered(page, "MIJN GEGEVENS")
        # MIJN GEGEVENS answers with what we keep, then the history and how to export it.
        expect(page.get_by_role("log").locator(".msg.bot").nth(-2)).to_contain_text("Dit weten we van u")
        expect(page.get_by_role("log").locator(".msg.bot").last).to_contain_text("MIJN GEGEVENS EXPORT")
        page.reload()
        expect(page.get_by_role("log").locator(".msg.me").first).to_be_visible()
        name = "desktop" if size is DESKTOP else "phone"
        shot(page, f"simulator-private-{tab.lower()}-{name}")
        page.get_by_role("button", name="Wissen").click()
        expect(page.get_by_role("log").locator(".msg")).to_have_count(0)
    context.close()

    digits = PRIVATE_NUMBER.lstrip("+")
    private = [digits, digits[2:], "0" + digits[2:], PRIVATE_NAME, "Sanne", PRIVATE_POSTCODE, "7511"]
    decoded = [unquote_plus(u) for u in urls]
    assert len(urls) > 20
    assert [u for u in decoded if any(word in u for word in private)] == []
    # The test sees the data where it does travel, so it would see it in a URL too.
    assert any(digits in body for body in bodies) and any("Sanne" in body for body in bodies)
