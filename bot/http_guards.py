"""HTTP guards every response passes: security headers, no caching, redirects that never name the Host.

Starlette sets headers per response; a page that forgets them (an API answer, a CSV, a 404 from the
router, a 422 from validation) would be cached by a shared proxy and could be framed. This ASGI
middleware adds the headers to every response that does not set its own, and turns an absolute
`Location` on our own host (Starlette's trailing-slash redirect builds one from the request's `Host`
header) into a path, so that a forged `Host` never comes back in a redirect. Proxy headers are believed
only from TRUSTED_PROXIES, through uvicorn's own ProxyHeadersMiddleware, inside the app so that every
way of serving it (uvicorn, tests on an ASGI transport) sees the same client address.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

# What every response carries unless it sets its own; HTML pages set a stricter CSP of their own.
GUARD_HEADERS: dict[str, str] = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
}
# A page without its own policy (the simulator) keeps its inline script but still cannot be framed.
HTML_CSP = "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"


def guard_headers(*, html: bool = False) -> dict[str, str]:
    """The headers a response gets when it sets none of its own (for a hand-made error response)."""
    return GUARD_HEADERS | ({"Content-Security-Policy": HTML_CSP} if html else {})


def client_address(request: Request) -> str:
    """The client's address for rate limits: the peer, or what a trusted proxy forwarded for it."""
    return request.client.host if request.client else "unknown"


def trusted_proxies(setting: str) -> list[str]:
    """TRUSTED_PROXIES as uvicorn's list (addresses, networks, `*`); empty trusts nobody."""
    return [item.strip() for item in setting.split(",") if item.strip()]


class GuardHeadersMiddleware:
    """Adds the guard headers to every HTTP response and makes self-pointing redirects relative."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        host = next((v for n, v in scope.get("headers", []) if n == b"host"), b"").decode("latin-1")

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _guarded(list(message.get("headers", [])), host)
            await send(message)

        await self.app(scope, receive, guarded)


def _guarded(headers: list[tuple[bytes, bytes]], host: str) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
    html = content_type.startswith(b"text/html")
    out = [(n, _relative(v, host) if n.lower() == b"location" else v) for n, v in headers]
    for name, value in guard_headers(html=html).items():
        if name.lower().encode() not in present:
            out.append((name.lower().encode(), value.encode()))
    return out


def _relative(location: bytes, host: str) -> bytes:
    """A URL on the request's own host becomes its path and query, whatever that host claimed to be."""
    parts = urlsplit(location.decode("latin-1"))
    if not parts.netloc or parts.netloc.lower() != host.lower():
        return location
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return path.encode("latin-1")


__all__ = ["GuardHeadersMiddleware", "ProxyHeadersMiddleware", "client_address", "guard_headers"]
