"""The REST API's bearer token check (`API_TOKEN`), as a FastAPI dependency."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import HTTPException, Request, status

from bot.config import Settings


def api_token_guard(settings: Settings) -> Callable[[Request], None]:
    """A dependency that answers 401 unless the request carries `Authorization: Bearer <API_TOKEN>`."""

    def check(request: Request) -> None:
        expected = settings.api_token
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        # No token configured: the API stays closed rather than open to anyone.
        if (
            not expected
            or scheme.lower() != "bearer"
            or not hmac.compare_digest(token.strip().encode(), expected.encode())
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="a valid bearer token (API_TOKEN) is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
