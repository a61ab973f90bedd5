"""One-line notices carried across a redirect (`?flash=`, `?error=`), sealed with the data key.

A notice shows in the control room's own voice, above the page. As a plain query parameter anyone who
got an operator to open a link could put words there ("actie ingetrokken, bel ..."); sealed (Fernet,
through the vault) a notice shows only what this installation wrote, and only for a few minutes.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request

from bot.controlroom.deps import ControlRoom
from storage.crypto import DataKeyError

# Long enough for the redirect and a slow page load; a bookmarked or shared link shows no notice.
MAX_AGE_S = 300


def sealed(cr: ControlRoom, **notices: str) -> str:
    """The query string that carries these notices (field name: text) to the next page."""
    return urlencode({field: cr.vault.encrypt(text) for field, text in notices.items()})


def unsealed(cr: ControlRoom, request: Request, field: str) -> str:
    """The notice a redirect carried in `field`, or "" (none, or not sealed here, or too old)."""
    token = request.query_params.get(field, "")
    if not token:
        return ""
    try:
        return cr.vault.decrypt(token, ttl=MAX_AGE_S)
    except DataKeyError:
        return ""
