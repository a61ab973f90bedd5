"""Every control-room page speaks Dutch: no English word, no raw value (`nan`, `None`, `whatsapp`)."""

from __future__ import annotations

import html
import re

import httpx

from storage.crypto import DataVault
from storage.db import SessionFactory
from tests.conftest import FixedClock
from tests.controlroom.conftest import FakeTipFeed, csrf_of, login
from tests.controlroom.test_actions_pages import _create, _launched, _seed

# English words and raw values that slipped onto these pages before (channel keys, enum values, nan).
ENGLISH = {
    *("the", "and", "must", "lies", "outside", "error", "value", "please", "choose", "recipients"),
    *("nan", "None", "null", "undefined", "voice", "whatsapp", "telegram", "found", "arrested"),
    *("no_result", "cancelled", "draft", "active", "closed", "queued", "sent", "delivered", "failed"),
    *("missing_person", "useful", "not_useful", "Useful", "Send", "Close", "Outcome", "Tips?"),
}
ALLOWED = {"English"}  # the button that switches the page to English


def visible_words(page: str) -> set[str]:
    """The words a reader sees: tags (with their attributes), scripts and code (setting names) left out."""
    text = re.sub(r"<(script|style|code)\b.*?</\1>", " ", page, flags=re.DOTALL)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return set(re.findall(r"[A-Za-z_?]+", text)) - ALLOWED


async def test_every_page_speaks_dutch(
    client: httpx.AsyncClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    tips: FakeTipFeed,
) -> None:
    _seed(sessions, vault, clock())
    await login(client, "olga")
    pages: dict[str, httpx.Response] = {}
    draft = (await _create(client)).headers["location"]
    pages["preview"] = await client.get(draft)
    pages["edit"] = await client.get(f"{draft}/edit")
    pages["new"] = await client.get("/controlroom/actions/new")
    pages["no point"] = await _create(client, postcode="", lat="", lon="")
    pages["outside"] = await _create(client, postcode="", lat="40", lon="3")
    action_id = await _launched(client)
    live = f"/controlroom/actions/{action_id}"
    for channel in ("sms", "whatsapp", "telegram", "voice"):
        tips.add(action_id, "zag net een man met rode jas bij de Hema", channel=channel, verdict="useful")
    pages["live"] = await client.get(live)
    token = csrf_of(pages["live"].text)
    pages["close without outcome"] = await client.post(
        f"{live}/close", data={"csrf_token": token, "closing_text": ""}
    )
    pages["close confirmation"] = await client.post(
        f"{live}/close", data={"csrf_token": token, "outcome": "found", "closing_text": ""}
    )
    await client.post(
        f"{live}/close", data={"csrf_token": token, "outcome": "found", "closing_text": "", "confirm": "yes"}
    )
    pages["closed"] = await client.get(live)
    pages["actions"] = await client.get("/controlroom/actions")
    pages["figures"] = await client.get("/controlroom/figures")
    await client.post("/controlroom/logout", data={"csrf_token": csrf_of(pages["figures"].text)})
    await login(client, "ada")
    for name in ("audit", "operators", "settings"):
        pages[name] = await client.get(f"/controlroom/{name}")
    english = {name: sorted(visible_words(r.text) & ENGLISH) for name, r in pages.items()}
    assert english == dict.fromkeys(pages, [])
    assert all(r.status_code in (200, 422) for r in pages.values()), {
        n: r.status_code for n, r in pages.items()
    }
    assert "WhatsApp" in visible_words(pages["live"].text) and "spraak" in visible_words(pages["live"].text)
