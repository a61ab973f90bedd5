"""The public page of an action, `/a/{code}`: the alert, its photo and how to tip, for anyone with the link.

The SMS alert of an action with a photo links here; anyone may forward the link. So the page shows what
the alert itself said and nothing more: no personal data, no cookies, no script, no caching (a closed
action must go dark at once, also in a proxy). A draft is answered exactly like an unknown code, so a
draft's code never leaks. A running action's updates show below the alert, newest first, with their time
(not who wrote them). Once the action is closed, cancelled or expired the page says only that it is
over, with the outcome and the operator's closing text; the photo was deleted with the close and its
URL answers 410.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from bot.alerts import AlertTexts, thanks_already
from bot.config import Settings
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES, Catalogue
from storage.action_photos import PhotoFile, PhotoNotFound, photo_file
from storage.actions import ActionNotFound, find_action_by_code, updates_of
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.models import Action, ActionOutcome, ActionStatus, ActionUpdate, RelayPlatform

TEMPLATES = Path(__file__).parent / "templates"
# No script at all; the page's one <style> block and images from here only.
PAGE_CSP = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
PHOTO_HEADERS = PAGE_HEADERS | {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Content-Disposition": "inline",
}
MAX_CODE = 16
LIVE = (ActionStatus.ACTIVE,)
OVER = (ActionStatus.CLOSED, ActionStatus.CANCELLED)


class PhotoGone(PhotoNotFound):
    """The action ended: its photo was deleted and will not come back."""


def page_language(request: Request, asked: str | None) -> str:
    """`?lang=` when it names a language we have, else the first of ours in Accept-Language, else Dutch."""
    if asked in LANGUAGES:
        return str(asked)
    wanted: list[tuple[float, int, str]] = []
    for n, part in enumerate(request.headers.get("accept-language", "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-", 1)[0]
        if primary in LANGUAGES and quality > 0:
            wanted.append((-quality, n, primary))
    return min(wanted)[2] if wanted else DEFAULT_LANGUAGE


def action_page_router(
    *, sessions: SessionFactory, vault: DataVault, settings: Settings, catalogue: Catalogue, texts: AlertTexts
) -> APIRouter:
    """GET `/a/{code}` (the page) and `/a/{code}/photo` (the photo while the action runs); no session."""
    router = APIRouter(tags=["public"])
    templates = Jinja2Templates(directory=str(TEMPLATES))

    zone = ZoneInfo(settings.timezone)

    def find(code: str) -> tuple[Action | None, list[ActionUpdate]]:
        with sessions() as session:
            try:
                action = find_action_by_code(session, code=code[:MAX_CODE])
            except ActionNotFound:
                return None, []
            if action.status not in (*LIVE, *OVER):
                return None, []
            # An ended action's page says only that it is over: a cancelled one was sent in error.
            updates = updates_of(session, action_id=action.id or 0) if action.status in LIVE else []
        return action, list(reversed(updates))

    def tip_ways(action: Action) -> dict[str, str]:
        links = texts.direct_tip_links(action.code)
        ways = {platform.value: url for platform, url in links.items()}
        number = settings.twilio.sms_from
        if number:
            ways["sms"] = f"sms:{number}?body={quote(f'TIP {action.code}')}"
            ways["sms_number"] = number
        return ways

    def page(request: Request, code: str, lang: str | None) -> HTMLResponse:
        language = page_language(request, lang)
        action, updates = find(code)

        def t(key: str, **params: object) -> str:
            return catalogue.render(language, f"action_page.{key}", **params)

        context: dict[str, object] = {
            "lang": language,
            "t": t,
            "other_lang": "en" if language == "nl" else "nl",
            "privacy_url": settings.privacy_url(language),
        }
        if action is None:
            return templates.TemplateResponse(
                request, "action_page.html", context | {"action": None}, status_code=404, headers=PAGE_HEADERS
            )
        outcome = action.outcome or ActionOutcome.NO_RESULT
        context |= {
            "action": action,
            "over": action.status in OVER,
            "thanks": not thanks_already(action.closing_text or ""),
            "type": catalogue.render(language, f"action.type.{action.type.value}"),
            "outcome": catalogue.render(language, f"action.outcome.{outcome.value}"),
            "ways": tip_ways(action),
            "updates": [(u, u.created_at.astimezone(zone)) for u in updates],
            "whatsapp": RelayPlatform.WHATSAPP.value,
            "telegram": RelayPlatform.TELEGRAM.value,
        }
        return templates.TemplateResponse(request, "action_page.html", context, headers=PAGE_HEADERS)

    @router.get("/a/{code}", response_class=HTMLResponse)
    async def action_page(
        request: Request, code: str, lang: Annotated[str | None, Query(max_length=5)] = None
    ) -> HTMLResponse:
        """The alert, its photo and how to tip; only that it is over once it ended; 404 for a draft."""
        return await asyncio.to_thread(page, request, code, lang)

    def photo(code: str) -> PhotoFile:
        with sessions() as session:
            try:
                action = find_action_by_code(session, code=code[:MAX_CODE])
            except ActionNotFound:
                raise PhotoNotFound(code) from None
            if action.status in OVER:
                raise PhotoGone(code)
            if action.status not in LIVE:
                raise PhotoNotFound(code)
            return photo_file(session, action_id=action.id or 0, vault=vault)

    @router.get("/a/{code}/photo")
    async def action_photo(code: str) -> Response:
        """The photo while the action runs; 410 once it ended (the photo is deleted), else 404."""
        try:
            # Decrypting a photo of megabytes is work for a thread, not for the event loop.
            found = await asyncio.to_thread(photo, code)
        except PhotoGone:
            return Response(status_code=410, headers=PAGE_HEADERS)
        except PhotoNotFound:
            return Response(status_code=404, headers=PAGE_HEADERS)
        return Response(found.data, media_type=found.content_type, headers=PHOTO_HEADERS)

    return router
