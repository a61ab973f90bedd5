"""An asynchronous HTTP client for the twilio library (httpx), optionally sending to another host."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import httpx
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
TWILIO_DOMAIN = "twilio.com"


class TwilioThrottled(TwilioException):
    """Twilio answered 429; `retry_after` is its Retry-After header in seconds, when given."""

    def __init__(self, retry_after: float | None, code: int | None) -> None:
        super().__init__(f"throttled (code {code})")
        self.retry_after = retry_after
        self.code = code


class TwilioUnreachable(TwilioException):
    """The request did not get an answer: connection refused, reset or timed out."""


def rewrite_url(url: str, base_url: str | None) -> str:
    """The URL with any `*.twilio.com` host replaced by `base_url` (scheme, host, port and path prefix)."""
    if not base_url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host != TWILIO_DOMAIN and not host.endswith("." + TWILIO_DOMAIN):
        return url
    base = urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        # An HTTP date is allowed too; Twilio sends seconds, so a date is treated as "unknown".
        return None


def _error_code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


class HttpxTwilioClient(AsyncHttpClient):
    """twilio's async HTTP client on httpx: one pool, no thread, optional host rewrite for tests."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(logger=log, is_async=True, timeout=timeout)
        self.base_url = base_url
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request to Twilio (or the configured stand-in) and return twilio's Response."""
        url = rewrite_url(uri, self.base_url)
        try:
            response = await self._client.request(
                method.upper(),
                url,
                params=params,  # type: ignore[arg-type]
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout if timeout is not None else self.timeout,
                follow_redirects=allow_redirects,
            )
        except httpx.TransportError as exc:
            raise TwilioUnreachable(type(exc).__name__) from exc
        if response.status_code == 429:
            raise TwilioThrottled(_retry_after(response.headers), _error_code(response))
        return Response(response.status_code, response.text, dict(response.headers))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
