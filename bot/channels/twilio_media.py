"""The files of MMS and WhatsApp messages (and voice recordings), fetched from Twilio with our credentials.

Twilio names each file by a URL on its API (`MediaUrl0`..`MediaUrl9`, `RecordingUrl`), which answers
with HTTP basic auth (account SID and auth token) and usually redirects to a short-lived signed URL on
its CDN. The credentials go only to our own account's resources on Twilio's API over https; a redirect
is followed only to https and never carries them (each hop is checked here, not left to httpx).

Tests point `TWILIO_API_BASE_URL` at a fake: as for every other Twilio request, the https Twilio URLs
from the webhook are then sent to that fake (host rewritten, as `twilio_http.rewrite_url` does). No
webhook URL other than https on Twilio's hosts is ever accepted, in tests as in production.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from bot.channels.media import FetchedMedia, MediaRefused, MediaUnavailable, checked

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
TWILIO_DOMAIN = "twilio.com"
CDN_DOMAIN = "twiliocdn.com"
MAX_REDIRECTS = 3
TIMEOUT_S = 20.0


def _on(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def accepted_media_url(url: str) -> bool:
    """Whether a webhook's media URL may be fetched at all: https on a Twilio host, nothing else."""
    parts = urlsplit(url)
    return parts.scheme == "https" and _on((parts.hostname or "").lower(), TWILIO_DOMAIN)


def own_resource(url: str, account_sid: str) -> bool:
    """Whether the URL is one of our account's resources on Twilio's API (where our credentials may go)."""
    return accepted_media_url(url) and urlsplit(url).path.startswith(
        f"/{API_VERSION}/Accounts/{account_sid}/"
    )


def rewritten(url: str, base_url: str | None) -> str:
    """With a stand-in API configured (tests), a Twilio or Twilio CDN https URL goes to the stand-in."""
    if not base_url:
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not (_on(host, TWILIO_DOMAIN) or _on(host, CDN_DOMAIN)):
        return url
    base = urlsplit(base_url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


class TwilioMedia:
    """Fetches Twilio media with the account's credentials, following https redirects without them."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        api_base_url: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._base = api_base_url
        self._client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False, transport=transport)

    async def fetch(self, url: str, *, max_bytes: int) -> FetchedMedia:
        """The file at a webhook's media URL; `MediaRefused` for good, `MediaUnavailable` to try later."""
        if not own_resource(url, self._account_sid):
            raise MediaRefused("url")
        current, auth = url, True
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with self._client.stream(
                    "GET", rewritten(current, self._base), auth=self._auth if auth else None
                ) as response:
                    if response.is_redirect:
                        current = urljoin(current, response.headers.get("Location", ""))
                        if urlsplit(current).scheme != "https":
                            raise MediaRefused("url")
                        # The credentials stay with Twilio's API; a signed CDN URL needs none.
                        auth = own_resource(current, self._account_sid)
                        continue
                    if response.status_code == 429 or response.status_code >= 500:
                        raise MediaUnavailable(f"Twilio answered {response.status_code}")
                    if response.status_code != 200:
                        log.warning("twilio media refused: answered %s", response.status_code)
                        raise MediaRefused("unavailable")
                    data = await self._body(response, max_bytes)
                    return checked(data, declared=response.headers.get("Content-Type"), max_bytes=max_bytes)
            except httpx.TransportError as exc:
                raise MediaUnavailable(type(exc).__name__) from exc
        raise MediaRefused("url")

    @staticmethod
    async def _body(response: httpx.Response, max_bytes: int) -> bytes:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > max_bytes:
            raise MediaRefused("too_large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                # Stop reading at once: a file over the limit is never held whole.
                raise MediaRefused("too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
