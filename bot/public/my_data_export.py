"""`/mijn-gegevens/{token}`: the person's data as a JSON file, once, by the link MIJN GEGEVENS EXPORT sent.

The token is the only key: no login, no cookie. The first request within its validity gets the file
(marked used in the same transaction that reads the data); every later one, an expired or an unknown
token gets the same 410, so a token cannot be probed. Same headers as the other public pages: nothing
cached, no referrer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from bot.clock import Clock
from bot.public.action_page import PAGE_HEADERS, page_language
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.data_exports import ExportGone, export_document, redeem_export
from storage.db import SessionFactory, transaction
from storage.participants import audit

PREFIX = "/mijn-gegevens/"
_TOKEN_IN_PATH = re.compile(re.escape(PREFIX) + r"[^/?#\s]+")
FILE_HEADERS = PAGE_HEADERS | {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Content-Disposition": 'attachment; filename="burgernet-mijn-gegevens.json"',
}


class ExportTokenRedaction(logging.Filter):
    """Blanks the token of an export link in the access log, where it would be readable before its use."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's arguments (uvicorn passes the path as one of them); never drops a record."""
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_PATH.sub(PREFIX + "***", a) if isinstance(a, str) else a for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = _TOKEN_IN_PATH.sub(PREFIX + "***", record.msg)
        return True


def my_data_export_router(
    *, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue, clock: Clock
) -> APIRouter:
    """GET `/mijn-gegevens/{token}`: the JSON once (200, attachment), then 410."""
    router = APIRouter(tags=["public"])

    def document(token: str) -> bytes:
        now = clock()
        with transaction(sessions) as session:
            participant = redeem_export(session, vault=vault, token=token, now=now)
            data = export_document(session, vault=vault, participant=participant, now=now)
            audit(
                session,
                now=now,
                actor="participant",
                event="personal_data_exported",
                subject=f"participant:{participant.id}",
            )
        return json.dumps(data, ensure_ascii=False, indent=2).encode()

    @router.get(PREFIX + "{token}")
    async def my_data_export(
        request: Request, token: str, lang: Annotated[str | None, Query(max_length=5)] = None
    ) -> Response:
        """The person's data as a JSON file, the first time; 410 after, when expired or unknown."""
        try:
            body = await asyncio.to_thread(document, token)
        except ExportGone:
            text = catalogue.render(page_language(request, lang), "data_export.gone")
            return PlainTextResponse(text, status_code=410, headers=PAGE_HEADERS)
        return Response(body, media_type="application/json", headers=FILE_HEADERS)

    return router
