"""The tip outbox worker: POSTs each tip version to the control-room webhook, sends operators' questions.

Webhook: strictly in the order written, one forward row at a time from the head of the queue, signed
`X-Signature-256: sha256=<hex HMAC-SHA256 of "<timestamp>.<delivery id>.<body>">` with the timestamp in
`X-Signature-Timestamp` and the delivery id in `X-Burgernet-Delivery`, retried with exponential backoff
until the receiver answers 2xx. Signing the time and the id lets a receiver refuse a captured request
replayed later (docs/webhook_receiver.py checks all three). A row is leased before the POST and marked
done after the 2xx, so a crash re-sends at most the one row in flight, with the same delivery id (the
row id): the receiver drops such a repeat by that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bot.channels.base import Channel, SendError
from bot.config import Settings
from bot.messages import OutgoingMessage
from bot.texts import Catalogue
from storage.crypto import DataKeyError, DataVault
from storage.db import SessionFactory, transaction
from storage.models import TipForward
from storage.tip_outbox import (
    CHAT,
    WEBHOOK,
    claim_forward,
    claim_questions,
    forward_done,
    forward_failed,
    question_result,
)
from storage.vocabulary import ChannelKind

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


def chat_configured(settings: Settings) -> bool:
    """Whether tips also go to an operators' Telegram chat (sent once Telegram is wired, else skipped)."""
    return bool(settings.controlroom.telegram_chat_id)


def chat_text(payload: Mapping[str, Any], catalogue: Catalogue, *, event: str, tz: str) -> str:
    """A tip as a short message for the operators' chat (Dutch: the control room's language; local time)."""
    location = payload.get("location") or {}
    seen_at = payload.get("seen_at")
    when = (
        datetime.fromisoformat(seen_at).astimezone(ZoneInfo(tz)).strftime("%H:%M %d-%m") if seen_at else None
    )
    if payload.get("seen_text"):  # the tipster's words next to the time, or alone when they gave none
        phrase = f"‘{payload['seen_text']}’"
        when = f"{when} ({phrase})" if when else phrase
    where = location.get("text") or (
        f"{location['lat']:.5f}, {location['lon']:.5f}" if location.get("lat") is not None else None
    )
    facts = [
        ("where", where),
        ("when", when),
        ("direction", payload.get("direction")),
        ("plate", payload.get("vehicle_plate")),
        ("description", payload.get("description")),
        ("media", str(len(payload["media"])) if payload.get("media") else None),
    ]
    lines = "".join(
        "\n"
        + catalogue.render("nl", "tip.chat_fact", label=catalogue.render("nl", f"tip.label_{name}"), value=v)
        for name, v in facts
        if v
    )
    key = "tip.chat_updated" if event == "tip.updated" else "tip.chat"
    return (
        catalogue.render(
            "nl",
            key,
            id=payload.get("id"),
            code=payload.get("action_code"),
            channel=payload.get("channel"),
            reporter=payload.get("reporter"),
            text=payload.get("text") or "-",
        )
        + lines
    )


def webhook_configured(settings: Settings) -> bool:
    """Whether tips go to a control-room webhook (both its URL and its secret are set)."""
    if settings.controlroom.webhook_url and not settings.controlroom.webhook_secret:
        log.warning("CONTROLROOM_WEBHOOK_URL is set without CONTROLROOM_WEBHOOK_SECRET: tips are not POSTed")
    return bool(settings.controlroom.webhook_url and settings.controlroom.webhook_secret)


class TipForwarder:
    """Sends the tip outbox: webhook forwards in order, operator questions on the tipster's channel."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        settings: Settings,
        clock: Callable[[], datetime],
        vault: DataVault,
        catalogue: Catalogue,
        senders: Mapping[ChannelKind, Channel],
        http: httpx.AsyncClient | None = None,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        poll_s: float = 1.0,
        timeout_s: float = 5.0,
        max_question_attempts: int = 5,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._vault = vault
        self._catalogue = catalogue
        self._senders = senders
        self._http = http
        self._owns_http = http is None
        self._timeout_s = timeout_s
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._poll_s = poll_s
        self._max_question_attempts = max_question_attempts
        self._webhook = webhook_configured(settings)
        self._chat = chat_configured(settings)
        self._questions_due = True
        self._next_question_poll = 0.0
        self._warned_no_telegram = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- control -----------------------------------------------------------------------------

    def wake(self, *, questions: bool = True) -> None:
        """Look at the outbox now; safe from any thread (the router stores tips in a worker thread).

        `questions=False` (a tip was stored): only the forward lanes changed, so with no lane configured
        there is nothing to do, and the question queue is not read for every tip.
        """
        if questions:
            self._questions_due = True
        elif not (self._webhook or self._chat):
            return
        loop, ready = self._loop, self._wake
        if loop is not None and ready is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ready.set)

    async def start(self) -> None:
        """Run the worker in the background until `stop()`."""
        if self._task is not None:
            return
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="tip-forwarder")

    async def stop(self) -> None:
        """Finish the send in flight and stop; the rest stays in the outbox for the next start."""
        self._stopping = True
        self.wake()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def drain(self) -> int:
        """Send everything due now (by the injected clock) and return how many sends succeeded."""
        done = 0
        self._questions_due = True
        while (sent := await self.step()) > 0:
            done += sent
        return done

    async def step(self) -> int:
        """One pass over both queues; how many sends succeeded (0: nothing due, or only failures)."""
        webhook = await self._lane_batch(WEBHOOK) if self._webhook else 0
        chat = await self._lane_batch(CHAT) if self._chat else 0
        questions = 0
        # Questions queued by another process are found by the poll; this process's wake the worker.
        if self._questions_due or time.monotonic() >= self._next_question_poll:
            self._questions_due = False
            self._next_question_poll = time.monotonic() + self._poll_s
            questions = await self._questions()
            self._questions_due = self._questions_due or questions > 0
        return webhook + chat + questions

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            # Cleared before the pass: a wake-up during the pass makes the wait below return at once.
            self._wake.clear()
            try:
                progressed = await self.step()
            except Exception:
                log.exception("tip forwarder pass failed; trying again shortly")
                progressed = 0
            if progressed > 0 or self._stopping:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    # ---- webhook -----------------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s)
        return self._http

    def _backoff(self, attempts: int) -> float:
        return float(min(self._backoff_base_s * 2 ** max(attempts - 1, 0), self._backoff_max_s))

    async def _lane_batch(self, lane: str, limit: int = 50) -> int:
        """Send forwards from the head of a lane's queue until one fails or none is due."""
        sent = 0
        for _ in range(limit):
            now = self._clock()
            with transaction(self._sessions) as session:
                forward = claim_forward(session, lane=lane, now=now, lease=LEASE)
            if forward is None:
                return sent
            error = await (self._post(forward) if lane == WEBHOOK else self._to_chat(forward))
            now = self._clock()
            attempts = getattr(forward, f"{lane}_attempts") + 1
            wait = self._backoff(attempts)
            with transaction(self._sessions) as session:
                if error is None:
                    forward_done(session, lane=lane, forward_id=forward.id or 0, now=now)
                else:
                    next_at = now + timedelta(seconds=wait)
                    forward_failed(
                        session, lane=lane, forward_id=forward.id or 0, error=error, next_at=next_at
                    )
            if error is not None:
                log.warning(
                    "tip %s: forward %s not acknowledged (%s); retry in %.0f s", lane, forward.id, error, wait
                )
                return sent
            sent += 1
        return sent

    async def _to_chat(self, forward: TipForward) -> str | None:
        """Send one forward to the operators' chat; None when Telegram took it (or is not wired at all)."""
        sender = self._senders.get(ChannelKind.TELEGRAM)
        if sender is None:
            # The providers are wired after us; without Telegram there is no chat to wait for.
            if not self._warned_no_telegram:
                log.warning(
                    "CONTROLROOM_TELEGRAM_CHAT_ID is set but Telegram is not configured: chat skipped"
                )
                self._warned_no_telegram = True
            return None
        message = OutgoingMessage(
            channel=ChannelKind.TELEGRAM,
            recipient=self._settings.controlroom.telegram_chat_id or "",
            text=chat_text(forward.payload, self._catalogue, event=forward.event, tz=self._settings.timezone),
        )
        try:
            await sender.send(message)
        except SendError as exc:
            return exc.code or type(exc).__name__
        return None

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

    # ---- operator questions ------------------------------------------------------------------

    async def _questions(self) -> int:
        now = self._clock()
        with transaction(self._sessions) as session:
            claimed = claim_questions(session, now=now, lease=LEASE)
        if not claimed:
            return 0
        sent = 0
        for question in claimed:
            error: SendError | None = None
            try:
                message = self._question_message(
                    question.channel,
                    question.address_enc,
                    question.language,
                    code=question.action_code,
                    text=question.text,
                )
                sender = self._senders.get(question.channel)
                if sender is None:
                    raise SendError(f"no sender for {question.channel.value}", code="no_sender")
                await sender.send(message)
            except SendError as exc:
                error = exc
            now = self._clock()
            attempts = question.attempts + 1
            retry = error is not None and error.retryable and attempts < self._max_question_attempts
            with transaction(self._sessions) as session:
                question_result(
                    session,
                    message_id=question.id,
                    sent=error is None,
                    error=None if error is None else (error.code or type(error).__name__),
                    next_at=now + timedelta(seconds=self._backoff(attempts)) if retry else None,
                )
            sent += error is None
        return sent

    def _question_message(
        self, channel: ChannelKind, address_enc: str | None, lang: str, *, code: str, text: str
    ) -> OutgoingMessage:
        from bot.channels.base import PermanentSendError

        if address_enc is None:
            raise PermanentSendError("the tipster cannot be reached", code="erased")
        try:
            recipient = self._vault.decrypt(address_enc)
        except DataKeyError as exc:
            raise PermanentSendError("address cannot be decrypted", code="data_key") from exc
        body = self._catalogue.render(lang, "tip.operator_question", code=code, question=text)
        return OutgoingMessage(channel=channel, recipient=recipient, text=body)
