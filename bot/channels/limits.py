"""What every webhook checks before it parses anything: the content type and the size of the body."""

from __future__ import annotations

import logging

from fastapi import HTTPException, Request

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


def media_type(request: Request) -> str:
    """The request's content type without parameters (`; charset=utf-8`), lower case."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited_body(request: Request, *, content_type: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """The raw body; 415 for another content type, 413 when it is larger than `limit` bytes."""
    if media_type(request) != content_type:
        log.warning("webhook %s refused: content type is not %s", request.url.path, content_type)
        raise HTTPException(415, f"{content_type} expected")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        log.warning("webhook %s refused: declared body over %d bytes", request.url.path, limit)
        raise HTTPException(413, "body too large")
    body = bytearray()
    # Counted while streaming: a missing or false Content-Length must not let a large body through.
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            log.warning("webhook %s refused: body over %d bytes", request.url.path, limit)
            raise HTTPException(413, "body too large")
    return bytes(body)
