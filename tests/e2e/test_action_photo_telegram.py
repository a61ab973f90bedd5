"""An action's photo through the running app to Telegram: the Bot API fetches it from the public page.

Anna follows PC4 7511 on Telegram; an operator creates an action over Enschede with a photo (a JPEG
with EXIF, by the API) and launches it. The fake Bot API gets sendPhoto with the alert as its caption and
the URL of the action's public page; it downloads the photo from the app serving on loopback, as
Telegram's servers would, and what it gets is the stored photo without its metadata.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest

from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runtime import Runtime
from storage.crypto import new_data_key
from tests.actions.photo_files import has_metadata, jpeg_with_exif
from tests.conftest import FixedClock
from tests.e2e.serving import served_runtime
from tests.e2e.test_area_follower import ANNA, ENSCHEDE, SECRET, TOKEN, anna_says, until
from tests.fakes.telegram_api import FakeTelegramApi

API_TOKEN = "action-photo-token-0123456789abcdef"
HEADLINE = "Vermist: meisje (6), gele regenjas"


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(database_url: str, fake: FakeTelegramApi, port: int) -> Settings:
    # The public base URL is the app itself: the fake fetches the photo where Telegram would.
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        api_token=API_TOKEN,
        public_base_url=f"http://127.0.0.1:{port}",
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_webhook_secret=SECRET,
        privacy_statement_version="2026-1",
    )


@pytest.fixture
async def running(
    settings: Settings, clock: FixedClock, port: int
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with served_runtime(settings, clock, port=port, telegram_options={"per_chat_interval": 0}) as both:
        yield both


async def test_a_follower_on_telegram_gets_the_photo_with_the_alert_as_its_caption(
    running: tuple[Runtime, httpx.AsyncClient], fake: FakeTelegramApi
) -> None:
    runtime, http = running
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for n, update in enumerate([anna_says(710_001, text="VOLG 7511"), anna_says(710_002, text="ja")]):
        assert (await http.post(WEBHOOK_PATH, json=update, headers=headers)).status_code == 200
        await until(lambda n=n: len(fake.sent_texts(ANNA)) > n, f"reply {n + 1}")

    original = jpeg_with_exif()
    assert has_metadata(original)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    created = await http.post(
        "/api/v1/actions",
        headers=auth,
        json={
            "type": "missing_person",
            "headline": HEADLINE,
            "description": "Lisa is sinds 15:00 vermist bij het Van Heekpark.",
            "instruction": "Ziet u haar? Bel 112.",
            "area": ENSCHEDE,
            "expires_at": (runtime.clock() + timedelta(hours=2)).isoformat(),
            "photo": base64.b64encode(original).decode(),
        },
    )
    assert created.status_code in (200, 201), created.text
    action = created.json()
    launched = await http.post(f"/api/v1/actions/{action['id']}/launch", headers=auth)
    assert launched.status_code == 200, launched.text
    await until(lambda: fake.photos, "the photo reached Anna")

    [photo] = fake.photos
    page = f"{runtime.settings.public_base_url}/a/{action['code']}"
    assert photo.chat_id == ANNA and photo.ref == page + "/photo"
    assert HEADLINE in photo.caption and "Bel 112" in photo.caption
    served_photo = (await http.get(f"/a/{action['code']}/photo")).content
    assert photo.content == served_photo and not has_metadata(photo.content)
    assert not any(HEADLINE in text for text in fake.sent_texts(ANNA)), "the alert went once, as the caption"


async def test_an_update_with_a_photo_reaches_telegram_as_a_photo_with_the_update_as_caption(
    running: tuple[Runtime, httpx.AsyncClient], fake: FakeTelegramApi
) -> None:
    runtime, http = running
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    for n, update in enumerate([anna_says(720_001, text="VOLG 7511"), anna_says(720_002, text="ja")]):
        assert (await http.post(WEBHOOK_PATH, json=update, headers=headers)).status_code == 200
        await until(lambda n=n: len(fake.sent_texts(ANNA)) > n, f"reply {n + 1}")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    created = await http.post(
        "/api/v1/actions",
        headers=auth,
        json={
            "type": "missing_person",
            "headline": HEADLINE,
            "description": "Lisa is sinds 15:00 vermist bij het Van Heekpark.",
            "instruction": "Ziet u haar? Bel 112.",
            "area": ENSCHEDE,
            "expires_at": (runtime.clock() + timedelta(hours=2)).isoformat(),
        },
    )
    action = created.json()
    assert (await http.post(f"/api/v1/actions/{action['id']}/launch", headers=auth)).status_code == 200
    await until(lambda: any(HEADLINE in text for text in fake.sent_texts(ANNA)), "the alert, as text")
    assert fake.photos == []

    original = jpeg_with_exif(size=(300, 400))
    sent = await http.post(
        f"/api/v1/actions/{action['id']}/updates",
        headers=auth,
        json={"text": "Een recente foto van Lisa.", "photo": base64.b64encode(original).decode()},
    )
    assert sent.status_code == 201, sent.text
    await until(lambda: fake.photos, "the update's photo reached Anna")
    [photo] = fake.photos
    assert photo.ref == f"{runtime.settings.public_base_url}/a/{action['code']}/photo"
    assert photo.caption.startswith(f"🔄 Aanvulling Burgernet {action['code']}")
    assert "Een recente foto van Lisa." in photo.caption
    served_photo = (await http.get(f"/a/{action['code']}/photo")).content
    assert photo.content == served_photo and not has_metadata(photo.content)
    assert not any("Een recente foto" in text for text in fake.sent_texts(ANNA)), "sent once, as the caption"
