"""The tip outbox worker: POSTs each tip version to the control-room webhook.

Webhook: strictly in the order written, one forward row at a time from the head of the queue, signed
`X-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<delivery id>.<body>">` with the timestamp in
`X-Signature-Timestamp` and the delivery id in `X-Burgernet-Delivery`, retried with exponential backoff
until the receiver answers 2xx. Signing the time and the id lets a receiver refuse a captured request
replayed later (docs/webhook_receiver.py checks all three). A row is leased before the POST and marked
done after the 2xx, so a crash re-sends at most the one row in flight, with the same delivery id (the
row id): the receiver drops such a repeat by that id.

The operators' chat and the operators' questions to tipsters are outbound rows (bot/tips/chat.py,
bot/tips/questions.py): the dispatcher sends those with every other message out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from bot.config import Settings
from bot.tips.worker import WakeableWorker
from storage.db import SessionFactory, transaction
from storage.models import TipForward
from storage.tip_outbox import claim_forward, forward_done, forward_failed

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature-256"
TIMESTAMP_HEADER = "X-Signature-Timestamp"
DELIVERY_HEADER = "X-Burgernet-Delivery"
LEASE = timedelta(seconds=60)


def signature(body: bytes, secret: str, *, timestamp: int, delivery: str) -> str:
    """The `X-Signature-256` value: `sha256=` and the hex HMAC-SHA256 of `timestamp.delivery.body`."""
    signed = f"{timestamp}.{delivery}.".encode() + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_body(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a tip."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def webhook_configured(settings: Settings) -> bool:
    """Whether tips go to a control-room webhook (both its URL and its secret are set)."""
    if settings.controlroom.webhook_url and not settings.controlroom.webhook_secret:
        log.warning("CONTROLROOM_WEBHOOK_URL is set without CONTROLROOM_WEBHOOK_SECRET: tips are not POSTed")
    return bool(settings.controlroom.webhook_url and settings.controlroom.webhook_secret)


class TipForwarder(WakeableWorker):
    """Sends the webhook lane of the tip outbox, in order; idle when no webhook is configured."""

    name = "tip-forwarder"

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        settings: Settings,
        clock: Callable[[], datetime],
        http: httpx.AsyncClient | None = None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
        batch: int = 50,
    ) -> None:
        super().__init__(poll_s=poll_s)
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        self._timeout_s = timeout_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._batch = batch
        self._webhook = webhook_configured(settings)

    # ---- control -----------------------------------------------------------------------------

    def wake(self) -> None:
        """A tip version was stored: look at the webhook lane now (nothing to do without a webhook)."""
        if self._webhook:
            super().wake()

    async def stop(self) -> None:
        """Finish the POST in flight and stop; the rest stays in the outbox for the next start."""
        await super().stop()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> int:
        """Send everything due now (by the injected clock) and return how many sends succeeded."""
        done = 0
        while (sent := await self.step()) > 0:
            done += sent
        return done

    async def step(self) -> int:
        """Send from the head of the webhook lane until a POST fails or none is due; how many succeeded."""
        if not self._webhook:
            return 0
        sent = 0
        while (batch := await self._batch_to_webhook(self._batch)) > 0:
            sent += batch
            if batch < self._batch:
                break
        return sent

    # ---- webhook -----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s)
        return self._http

    def _backoff(self, attempts: int) -> float:
        return float(min(self._backoff_base_s * 2 ** max(attempts - 1, 0), self._backoff_max_s))

    async def _batch_to_webhook(self, limit: int) -> int:
        """Send forwards from the head of the webhook's queue until one fails or none is due."""
        sent = 0
        for _ in range(limit):
            now = self._clock()
            with transaction(self._sessions) as session:
                forward = claim_forward(session, now=now, lease=LEASE)
            if forward is None:
                return sent
            error = await self._post(forward)
            now = self._clock()
            attempts = forward.webhook_attempts + 1
            wait = self._backoff(attempts)
            with transaction(self._sessions) as session:
                if error is None:
                    forward_done(session, forward_id=forward.id or 0, now=now)
                else:
                    next_at = now + timedelta(seconds=wait)
                    forward_failed(session, forward_id=forward.id or 0, error=error, next_at=next_at)
            if error is not None:
                log.warning(
                    "tip webhook: forward %s not acknowledged (%s); retry in %.0f s", forward.id, error, wait
                )
                return sent
            sent += 1
        return sent

    async def _post(self, forward: TipForward) -> str | None:
        """POST one forward; None on a 2xx, else what went wrong."""
        body = webhook_body(forward.payload)
        # Each try is signed anew with its own time, so a retry after a long outage is still fresh.
        timestamp, delivery = int(self._clock().timestamp()), str(forward.id)
        secret = self._settings.controlroom.webhook_secret or ""
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(body, secret, timestamp=timestamp, delivery=delivery),
            TIMESTAMP_HEADER: str(timestamp),
            "X-Burgernet-Event": forward.event,
            DELIVERY_HEADER: delivery,
        }
        try:
            response = await self._client().post(
                self._settings.controlroom.webhook_url or "", content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"
