"""The accounts page in Debian's Chromium, on the whole app, at desktop size and 420×860: an admin
is refused a weak password, logs an operator out everywhere and deactivates her (each time her open
live page goes to the login form by itself; deactivated, she cannot log in again), and reactivates
her; the audit page shows the security events apart from the actions."""

from __future__ import annotations

import re
from typing import Any

import pytest

from storage.db import transaction
from storage.models import OperatorRole
from storage.operators import create_operator
from tests.browser.conftest import LiveRoom, shot
from tests.browser.test_controlroom_browser import _login
from tests.browser.test_operator_browser import _launch
from tests.controlroom.conftest import PASSWORD, cheap_hasher

pytestmark = pytest.mark.browser
SIZES = [
    pytest.param({"width": 1280, "height": 900}, id="desktop"),
    pytest.param({"width": 420, "height": 860}, id="phone"),
]


def _admin(room: LiveRoom) -> None:
    with transaction(room.runtime.sessions) as session:
        create_operator(
            session,
            username="ada",
            password=PASSWORD,
            role=OperatorRole.ADMIN,
            now=room.runtime.clock(),
            hasher=cheap_hasher(),
        )


def _fits(page: Any) -> None:
    width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"the page is wider than the screen: {width}"


@pytest.mark.parametrize("viewport", SIZES)
def test_admin_manages_an_operators_account(
    live_room: LiveRoom, browser: Any, viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    room = live_room
    _admin(room)
    size = "desktop" if viewport["width"] > 500 else "phone"
    olga = browser.new_context(viewport=viewport, locale="nl-NL").new_page()
    _login(olga, room.url, "olga")
    _launch(olga, room.url)
    live = olga.url
    expect(olga.locator("#action-status")).to_have_text("actief")

    admin = browser.new_context(viewport=viewport, locale="nl-NL").new_page()
    _login(admin, room.url, "ada")
    admin.goto(f"{room.url}/controlroom/operators")
    card = admin.locator("section.account", has=admin.get_by_role("heading", name=re.compile("^olga")))
    expect(card).to_contain_text("open sessies: 1")
    _fits(admin)

    # A weak password is refused with a reason; nothing changes.
    card.get_by_text("Nieuw wachtwoord instellen").click()
    card.get_by_label("Nieuw wachtwoord").fill("aaaaaaaaaaaa")
    card.get_by_role("button", name="Wachtwoord opslaan").click()
    expect(admin.get_by_role("alert")).to_have_text("Het wachtwoord heeft te weinig verschillende tekens.")
    olga.reload()
    expect(olga).to_have_url(live)

    # Log out everywhere: her open live page ends its stream and goes to the login form by itself.
    card = admin.locator("section.account", has=admin.get_by_role("heading", name=re.compile("^olga")))
    card.get_by_role("button", name="Overal uitloggen").click()
    expect(admin.get_by_role("status")).to_contain_text("olga is overal uitgelogd (1 sessies)")
    expect(olga).to_have_url(re.compile(r"/controlroom/login$"), timeout=5000)

    # Deactivate while her live page is open: the stream ends and the page goes to the login form.
    _login(olga, room.url, "olga")
    olga.goto(live)
    expect(olga.locator("#action-status")).to_have_text("actief")
    olga.wait_for_timeout(300)  # the stream is open
    card = admin.locator("section.account", has=admin.get_by_role("heading", name=re.compile("^olga")))
    card.get_by_role("button", name="Deactiveren").click()
    expect(admin.get_by_role("status")).to_contain_text("Account olga is gedeactiveerd")
    card = admin.locator("section.account", has=admin.get_by_role("heading", name=re.compile("^olga")))
    expect(card).to_contain_text("Gedeactiveerd")
    expect(olga).to_have_url(re.compile(r"/controlroom/login$"), timeout=5000)
    shot(admin, f"accounts-{size}")
    _fits(admin)
    _login(olga, room.url, "olga")
    expect(olga.get_by_role("alert")).to_have_text("Gebruikersnaam of wachtwoord klopt niet.")

    card.get_by_role("button", name="Weer activeren").click()
    expect(admin.get_by_role("status")).to_contain_text("Account olga is weer actief")
    _login(olga, room.url, "olga")
    expect(olga).to_have_url(re.compile(r"/controlroom/actions$"))

    # The audit log: the failed login is a security event, the admin's changes are actions.
    admin.goto(f"{room.url}/controlroom/audit")
    admin.get_by_label("Soort").select_option("security")
    admin.get_by_role("button", name="Filteren").click()
    rows = admin.locator("#audit-table tbody tr")
    expect(rows.first).to_contain_text("security.login_failed")
    assert all("security." in text for text in rows.all_inner_texts())
    admin.get_by_label("Soort").select_option("actions")
    admin.get_by_role("button", name="Filteren").click()
    expect(admin.locator("#audit-table")).to_contain_text("controlroom.operator_deactivated")
    assert not any("security." in text for text in admin.locator("#audit-table tbody tr").all_inner_texts())
    shot(admin, f"audit-{size}")
    _fits(admin)
