"""The public sign-up page in Debian's Chromium, in Dutch and English: every step (form, form with
errors, code, wrong code, done) checked by axe-core (WCAG 2.1 A/AA and best practices) without a
violation, the error summary focused, keyboard only, no sideways scrolling on a phone (420x860) nor at
320 CSS pixels wide (400% zoom), under the page's own CSP; the code is the one fake Twilio received."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import LiveRoom, shot

pytestmark = pytest.mark.browser
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
LABELS = {
    "nl": {
        "postcode": "Postcode",
        "number": "Huisnummer",
        "phone": "Mobiel nummer",
        "consent": "Ik ben 16 jaar of ouder",
        "submit": "Stuur mij een code",
        "code": "Code",
        "confirm": "Bevestigen",
    },
    "en": {
        "postcode": "Postcode",
        "number": "House number",
        "phone": "Mobile number",
        "consent": "I am 16 or older",
        "submit": "Send me a code",
        "code": "Code",
        "confirm": "Confirm",
    },
}


def no_violations(page: Any, step: str) -> None:
    """axe-core on the page as it is: nothing may be found."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}})
    found = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in results.response["violations"]
    ]
    assert found == [], f"{step}: {found}"


def fits(page: Any, width: int, step: str) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"{step}: {scroll} px wide at {width}"


def focused_summary(page: Any) -> bool:
    return bool(
        page.evaluate("document.activeElement && document.activeElement.hasAttribute('data-error-summary')")
    )


@pytest.mark.parametrize(
    ("lang", "phone", "channel"),
    [("nl", "+31611122233", "SMS"), ("en", "+31611122244", "Telegram")],
    ids=["nl-sms", "en-telegram"],
)
def test_every_step_is_accessible(
    live_room: LiveRoom, browser: Any, lang: str, phone: str, channel: str
) -> None:
    room = live_room
    labels = LABELS[lang]
    blocked: list[str] = []
    # The page runs no script of its own; axe comes in through the DevTools protocol, which the CSP
    # does not govern, so the page is checked under its real policy.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{room.url}/aanmelden?lang={lang}")
    assert page.evaluate("document.documentElement.lang") == lang
    no_violations(page, "form")
    shot(page, f"signup-{lang}-form-desktop")

    # Sent empty: the summary is focused and lists every field, each error tied to its field.
    page.get_by_role("button", name=labels["submit"]).click()
    page.wait_for_selector("[data-error-summary]")
    assert focused_summary(page)
    assert page.locator("[data-error-summary] li").count() == 5
    described = page.get_by_label(labels["phone"], exact=True).get_attribute("aria-describedby") or ""
    assert "phone-error" in described
    no_violations(page, "form with errors")
    shot(page, f"signup-{lang}-errors-desktop")

    # By keyboard: the summary's link takes the focus to the field.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") in ("postcode", "house_number")

    page.get_by_label(labels["postcode"], exact=True).fill("7511 AB")
    page.get_by_label(labels["number"], exact=True).fill("12")
    page.get_by_label(labels["phone"], exact=True).fill(phone)
    page.get_by_label(channel, exact=True).check()
    page.get_by_label(re.compile(labels["consent"])).check()
    page.get_by_role("button", name=labels["submit"]).click()
    page.get_by_label(labels["code"], exact=True).wait_for()
    no_violations(page, "code")
    shot(page, f"signup-{lang}-code-desktop")

    [message] = room.sent(phone, 1)
    code = re.search(r"\b(\d{6})\b", message["Body"])
    assert code
    page.get_by_label(labels["code"], exact=True).fill(f"{(int(code.group(1)) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name=labels["confirm"]).click()
    page.wait_for_selector("[data-error-summary]")
    assert focused_summary(page)
    no_violations(page, "wrong code")

    page.set_viewport_size({"width": 420, "height": 860})
    fits(page, 420, "wrong code")
    shot(page, f"signup-{lang}-code-error-phone")
    page.get_by_label(labels["code"], exact=True).fill(code.group(1))
    page.get_by_role("button", name=labels["confirm"]).click()
    page.wait_for_selector("[data-done]")
    no_violations(page, "done")
    fits(page, 420, "done")
    shot(page, f"signup-{lang}-done-phone")
    if channel == "Telegram":
        link = page.get_by_role("link", name="Open Telegram").get_attribute("href") or ""
        assert re.fullmatch(r"https://t\.me/\w+\?start=join_[0-9a-f]{32}", link)

    # A phone again, and 320 CSS pixels (400% zoom): the form reflows without sideways scrolling.
    for width in (420, 320):
        page.set_viewport_size({"width": width, "height": 860})
        page.goto(f"{room.url}/aanmelden?lang={lang}")
        fits(page, width, f"form at {width}")
        page.get_by_role("button", name=labels["submit"]).click()
        page.wait_for_selector("[data-error-summary]")
        fits(page, width, f"errors at {width}")
        no_violations(page, f"errors at {width}")
        shot(page, f"signup-{lang}-errors-{width}")
    assert blocked == []
    # The check itself can fail: a field without a label is found.
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=unlabelled>')")
    with pytest.raises(AssertionError, match="'label'"):
        no_violations(page, "a planted defect")
    context.close()
