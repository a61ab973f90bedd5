"""The privacy statement is public: `/privacy` in Dutch and English, without a session, with its version.

The consent question links it, so whoever registers can read what they agree to.
"""

from __future__ import annotations

import pytest

from bot.app import create_app
from bot.runtime import build_runtime
from bot.texts import Catalogue
from tests.conftest import FixedClock
from tests.controlroom.whole_app import BASE, client_for, whole_settings

PAGES = {
    "nl": ("/privacy", "Privacyverklaring", "Versie 2026-1"),
    "nl-explicit": ("/privacy/nl", "Privacyverklaring", "Versie 2026-1"),
    "en-path": ("/privacy/en", "privacy statement", "Version 2026-1"),
    "en-query": ("/privacy?lang=en", "privacy statement", "Version 2026-1"),
}


@pytest.mark.parametrize(("path", "title", "version"), PAGES.values(), ids=PAGES.keys())
async def test_privacy_statement_is_public_in_both_languages(
    database_url: str, clock: FixedClock, path: str, title: str, version: str
) -> None:
    runtime = build_runtime(whole_settings(database_url), clock=clock, run_migrations=False)
    async with client_for(create_app(runtime)) as http:
        page = await http.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert title in page.text and version in page.text
    assert "set-cookie" not in page.headers  # no session was needed, none was made


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_consent_question_links_the_statement_in_its_language(lang: str) -> None:
    settings = whole_settings("sqlite://")
    url = settings.privacy_url(lang)
    assert url == BASE + ("/privacy/en" if lang == "en" else "/privacy")
    assert url in Catalogue.load().render(lang, "registration.consent", url=url)
