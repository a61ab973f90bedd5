"""The privacy statement at `/privacy` (Dutch) and `/privacy/en` (English), the version consent names."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.config import Settings
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES

TEMPLATES = Path(__file__).parent / "templates"


def privacy_router(settings: Settings) -> APIRouter:
    """GET `/privacy` (`?lang=en` or `/privacy/en` for English): the statement, no session needed."""
    router = APIRouter(tags=["public"])
    templates = Jinja2Templates(directory=str(TEMPLATES))

    def page(request: Request, lang: str) -> HTMLResponse:
        lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        return templates.TemplateResponse(
            request,
            f"privacy_{lang}.html",
            {
                "lang": lang,
                "version": settings.privacy_statement_version,
                "settings": settings,
                "other_url": settings.privacy_url("nl" if lang == "en" else "en"),
            },
            headers={"Cache-Control": "public, max-age=3600"},
        )

    @router.get("/privacy", response_class=HTMLResponse)
    async def privacy(request: Request, lang: Annotated[str, Query(max_length=5)] = "nl") -> HTMLResponse:
        """The privacy statement in Dutch, or in the language asked for."""
        return page(request, lang)

    @router.get("/privacy/{lang}", response_class=HTMLResponse)
    async def privacy_in(request: Request, lang: str) -> HTMLResponse:
        """The privacy statement in a language (`nl`, `en`)."""
        return page(request, lang)

    return router
