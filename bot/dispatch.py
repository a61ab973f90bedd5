"""The outbox worker: claims queued deliveries, sends them within each channel's rate, records the result.

How a delivery moves: `queued` → claimed (`sending`, with the worker's id and time) → sent with the
provider's id, or back to `queued` with a backoff for a retryable error, or on to the person's next
channel when the error is permanent (opted out, bad number, no WhatsApp template), or `failed` when no
channel is left or the tries run out.

Crash safety: a claim is committed before anything is sent, and each result is committed within a few
milliseconds, grouped with the results that came in at the same moment; a consumer may go on sending
meanwhile but never has more than `MAX_UNRECORDED` sends whose result is not yet durable. A worker that
dies leaves its claimed rows in `sending` without a provider id; `reconcile()` puts them back in the queue
(on start for SQLite, where one process owns the outbox; after `dispatch_claim_timeout_s` on PostgreSQL,
where other workers may still be busy with their own claims). The one case that can send a message twice
is a death in the few milliseconds between the provider accepting a message and the commit of its id
(at most `MAX_UNRECORDED` messages per consumer): the providers offer no idempotency key for a send, and
we prefer a rare double alert to a lost one.

Messages out (replies, questions) go the same way, with one shortcut: while `run()` pumps, a flow step in
this process writes its rows already claimed by this worker and hands them over in memory after its
commit (`hand_off`), so a reply costs no claim transaction and no decryption. Their results are grouped
with the deliveries' (the same `MAX_UNRECORDED` bound); a hand-off that finds the pump stopped puts the
rows back in the queue, and a crash leaves them claimed for `reconcile()`. A STOP or an erasure that
commits while such a message waits here drops it (`FORGET_LISTENERS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, select

from bot.alerts import UPDATE_KINDS, AlertTexts, RelayRef
from bot.channels.base import Channel, PermanentSendError, RecipientOptedOut, SendError, SendReceipt
from bot.clock import Clock
from bot.config import Settings
from bot.messages import OutgoingMessage
from bot.outbox import message_of
from bot.send_budget import SharedBucket, sender_of
from storage.action_photos import update_brought_photo
from storage.actions import apply_status as store_status
from storage.actions import fall_back
from storage.crypto import DataKeyError, DataVault
from storage.db import SessionFactory, transaction, writer_lock, writer_turn
from storage.deliveries import (
    ClaimedDelivery,
    DeliveryRetry,
    DeliverySent,
    claim_deliveries,
    deliveries_retried,
    deliveries_sent,
    delivery_given_up,
    release_deliveries,
    requeue_stale_deliveries,
)
from storage.models import Action, ActionType, ActionUpdate, DeliveryKind
from storage.outbound import (
    FORGET_LISTENERS,
    ClaimedOutbound,
    claim_outbound,
    outbound_result,
    outbound_sent,
    release_outbound,
    requeue_stale_outbound,
)
from storage.participants import opt_out_identity, record_opt_out
from storage.relays import RELAY_KINDS, relay_of_delivery
from storage.verifications import claim_codes, code_result
from storage.vocabulary import ChannelKind, StatusUpdate

log = logging.getLogger(__name__)
_T = TypeVar("_T")

Sleep = Callable[[float], Awaitable[None]]
# After a database failure the pump starts again after this long, doubling up to the most.
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
# How long a result may wait for others to share its commit; the consumers keep sending meanwhile.
FLUSH_DELAY_S = 0.02
# The chats show an action's photo with the alert; an SMS links to the page that shows it, and a
# WhatsApp template (outside the 24-hour window) has no room for one.
PHOTO_CHANNELS = frozenset({ChannelKind.TELEGRAM, ChannelKind.WHATSAPP})
# The messages a call follows with "press 1 for the control room, 2 for a tip": those asking for tips.
CALL_MENU_KINDS = frozenset({DeliveryKind.ALERT, DeliveryKind.RELAY_ALERT})
# Verification codes go by SMS or WhatsApp; a landline's is spoken in a call. A claim is leased this long.
CODE_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.VOICE})
CODE_LEASE = timedelta(seconds=60)
CODE_BATCH = 20
# A consumer starts its next send while earlier results wait for their commit, but never has more than this
# many sends unrecorded: it bounds what a worker that dies can make us send twice.
MAX_UNRECORDED = 4
# Messages out claimed per channel at a time (replies are few, and each waits for a person).
MESSAGE_BATCH = 20
# At a limited rate a lane holds about this many seconds of deliveries claimed: a reply queued meanwhile
# goes before the rest, and no claim comes near the claim timeout.
ALERT_BATCH_S = 2.0
# The priority of a delivery in its channel's queue: replies and codes (0) first, then alerts, then closings.
# An update or a correction of an alert sent in error goes as fast as the alert itself.
LANE_OF = {
    DeliveryKind.ALERT: 1,
    DeliveryKind.RELAY_ALERT: 1,
    DeliveryKind.UPDATE: 1,
    DeliveryKind.RELAY_UPDATE: 1,
    DeliveryKind.CANCEL: 1,
    DeliveryKind.RELAY_CANCEL: 1,
}


class TokenBucket:
    """Lets `rate` sends a second through (rate 0: no limit), paced evenly.

    Each caller reserves the next free slot and sleeps until it (a virtual-scheduling token bucket), so
    waiters do not stampede and a late wake-up does not lose throughput: up to a tenth of a second of
    slots missed that way may be caught up at once, which is also the largest burst the provider sees.
    """

    def __init__(
        self, rate: float, *, monotonic: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.rate = rate
        self._burst = max(0.0, rate / 10 - 1)
        self._monotonic = monotonic
        self._sleep = sleep
        self._next: float | None = None

    async def acquire(self) -> None:
        """Wait until one send may go."""
        if self.rate <= 0:
            return
        interval = 1 / self.rate
        now = self._monotonic()
        # The schedule starts at the first send, not when the bucket was made: no burst at the start.
        slot = now if self._next is None else max(self._next, now - self._burst * interval)
        self._next = slot + interval
        if slot > now:
            await self._sleep(slot - now)


@dataclass(frozen=True)
class Outcome:
    """What happened to one send."""

    row: ClaimedDelivery | ClaimedOutbound
    provider_id: str | None = None
    segments: int | None = None
    error: SendError | None = None


@dataclass
class DrainReport:
    """What one `drain()` did (`sent` … `failed`: deliveries; `messages`: other messages out sent)."""

    sent: int = 0
    retried: int = 0
    fell_back: int = 0
    failed: int = 0
    messages: int = 0


# A claimed row in a lane's queue: its priority lane, when it was claimed (unique, so the row itself is never
# compared), the row. A plain tuple: the queue compares items at every put and get, in C.
_Item = tuple[int, int, "ClaimedDelivery | ClaimedOutbound"]


@dataclass
class _Lane:
    kind: ChannelKind
    sender: Channel
    bucket: TokenBucket | SharedBucket
    queue: asyncio.PriorityQueue[_Item] = field(default_factory=asyncio.PriorityQueue)
    outstanding: int = 0
    exhausted: bool = False


def default_worker_id() -> str:
    """A worker id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def rate_for(settings: Settings, kind: ChannelKind) -> float:
    """The configured send rate of a channel (0 = unlimited, also when rate limits are switched off)."""
    if not settings.dispatch.rate_limits:
        return 0.0
    return settings.dispatch.rates.get(kind, 0.0)


def template_for(settings: Settings, action_type: ActionType, kind: DeliveryKind) -> str | None:
    """The WhatsApp template configured for an action type (alert), an update, a correction or closing
    messages."""
    templates = settings.whatsapp_templates
    if kind in (DeliveryKind.RELAY_ALERT, DeliveryKind.RELAY_UPDATE) and templates.relay:
        return templates.relay
    if kind in UPDATE_KINDS and templates.update:
        return templates.update
    # Without a template of its own an update fills the alert's (its text in place of the headline).
    if kind in (DeliveryKind.ALERT, DeliveryKind.RELAY_ALERT, *UPDATE_KINDS):
        return templates.for_action.get(action_type) or templates.default
    if kind in (DeliveryKind.CANCEL, DeliveryKind.RELAY_CANCEL) and templates.correction:
        return templates.correction
    return templates.closing or templates.default


class Dispatcher:
    """Sends the outbox: per-channel lanes, each within a rate shared by all processes; crash-safe claims."""

    def __init__(
        self,
        sessions: SessionFactory,
        senders: Mapping[ChannelKind, Channel],
        clock: Clock,
        settings: Settings,
        worker_id: str | None = None,
        *,
        vault: DataVault,
        texts: AlertTexts,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._sessions = sessions
        self._senders = dict(senders)
        self._clock = clock
        self._settings = settings
        # Built from the flat settings at each access: read once, the lanes ask per message.
        self._dispatch = settings.dispatch
        self.worker_id = worker_id or default_worker_id()
        self._vault = vault
        self._texts = texts
        self._monotonic = monotonic
        self._sleep = sleep
        with sessions() as session:
            bind = session.get_bind()
        assert isinstance(bind, Engine), "the dispatcher needs sessions bound to an engine"
        self._engine: Engine = bind
        self._is_sqlite = bind.dialect.name == "sqlite"
        self._actions: dict[tuple[int, DeliveryKind], Action] = {}
        self._message_cache: dict[tuple[int, DeliveryKind, ChannelKind, str, int], str] = {}
        self._updates: dict[tuple[int, int], ActionUpdate] = {}
        self._update_photos: dict[tuple[int, int], bool] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False
        self._stopping = False
        self._pending: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        # Result groups stored in a thread while the writer was busy, one at a time and in order.
        self._storing = 0
        self._store_turn: asyncio.Lock | None = None
        self._store_tasks: set[asyncio.Task[None]] = set()
        # Consumers do not wait for their own commit, so a group may span more than one round of sends.
        self._group_size = max(1, settings.dispatch.concurrency * 2)
        self._in_send = 0
        self._failure: BaseException | None = None
        self._conn: Connection | None = None
        self._report = DrainReport()
        self._seq = itertools.count()
        # While `run()` pumps: its lanes, which take rows handed off by the steps that wrote them.
        self._takers: dict[ChannelKind, _Lane] | None = None
        # Messages out held in memory and not yet sent (id: identity), and those a STOP wiped meanwhile.
        self._held: dict[int, int | None] = {}
        self._dropped: set[int] = set()
        # A person's messages leave one at a time, in the order they were queued: the lane's consumers
        # run in parallel, and a question must not overtake the thanks before it.
        self._recipients: dict[tuple[ChannelKind, str], tuple[asyncio.Lock, int]] = {}

    # ---- public -------------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (after a launch, a close or a code queued); safe from any thread."""
        self._dirty = True
        if self._wake is None:
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if self._loop is not None and here is not self._loop:
            self._loop.call_soon_threadsafe(self._wake.set)
        else:
            self._wake.set()

    def claimant(self) -> str | None:
        """The worker id a step writes its messages claimed by while `run()` takes hand-offs, else None."""
        return self.worker_id if self._takers is not None and not self._stopping else None

    def hand_off(self, rows: Sequence[ClaimedOutbound]) -> None:
        """Take committed rows claimed by `claimant()` into the lanes; safe from any thread.

        When the pump stopped in between, the rows are queued again for the next claim.
        """
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._accept, list(rows))
                return
            except RuntimeError:  # the loop is closed
                pass
        self._release_messages([row.id for row in rows])

    async def run(self) -> None:
        """Reconcile, then send whatever becomes due until `stop()`.

        A database that fails (locked past the lock wait, restarting, unreachable) stops the pump, not
        the dispatcher: it waits, takes back its own claims and starts again, waiting longer each time.
        """
        restart_s = RESTART_MIN_S
        reconciled = False
        while not self._stopping:
            try:
                if not reconciled:
                    self.reconcile(stale_only=not self._is_sqlite)
                    reconciled = True
                else:
                    self._take_back_own_claims()
                await self._pump(until_idle=False)
                return
            except DBAPIError as exc:
                log.warning("dispatcher: database failed (%s); again in %.1fs", type(exc).__name__, restart_s)
            await self._pause(restart_s)
            restart_s = min(restart_s * 2, RESTART_MAX_S)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but not past a `stop()`."""
        wake = self._wake = asyncio.Event()
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)

    def _take_back_own_claims(self) -> None:
        now = self._clock()
        with transaction(self._sessions) as session:
            count = requeue_stale_deliveries(session, cutoff=None, now=now, worker=self.worker_id)
            count += requeue_stale_outbound(session, cutoff=None, worker=self.worker_id)
        if count:
            log.info("dispatcher: %d claims taken back after a database failure", count)

    def stop(self) -> None:
        """Ask `run()` to finish after the sends in flight."""
        self._stopping = True
        self.wake()

    async def drain(self) -> DrainReport:
        """Send everything due now (by the injected clock) and return; for tests and one-shot jobs."""
        self._report = DrainReport()
        self._stopping = False
        await self._pump(until_idle=True)
        return self._report

    def reconcile(self, *, stale_only: bool = True) -> int:
        """Put claims of dead workers back in the queue; returns how many.

        `stale_only=False` takes back every claim (SQLite: this process is the only worker).
        """
        now = self._clock()
        cutoff = now - timedelta(seconds=self._dispatch.claim_timeout_s)
        with transaction(self._sessions) as session:
            count = requeue_stale_deliveries(session, cutoff=cutoff if stale_only else None, now=now)
            count += requeue_stale_outbound(session, cutoff=cutoff if stale_only else None)
        if count:
            log.warning("reconcile: %d claimed messages of a stopped worker queued again", count)
        return count

    # ---- hand-offs ----------------------------------------------------------------------------

    def _accept(self, rows: list[ClaimedOutbound]) -> None:
        takers = self._takers
        left: list[int] = []
        for row in rows:
            lane = takers.get(row.channel) if takers is not None and not self._stopping else None
            if lane is None:
                left.append(row.id)
                continue
            self._held[row.id] = row.identity_id
            lane.queue.put_nowait((row.lane, next(self._seq), row))
            lane.outstanding += 1
        if left:
            self._release_messages(left)
            self._dirty = True

    def _release_messages(self, ids: list[int]) -> None:
        with transaction(self._sessions) as session:
            release_outbound(session, ids=ids, worker=self.worker_id)

    def _forget(self, identity_ids: Sequence[int]) -> None:
        """A STOP or an erasure committed (in any thread): its messages held here are not sent."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._drop, frozenset(identity_ids))

    def _drop(self, identity_ids: frozenset[int]) -> None:
        self._dropped.update(i for i, identity in self._held.items() if identity in identity_ids)

    # ---- the pump -----------------------------------------------------------------------------

    async def _pump(self, *, until_idle: bool) -> None:
        self._conn = self._engine.connect()
        FORGET_LISTENERS.append(self._forget)
        try:
            await self._pump_with_connection(until_idle=until_idle)
        finally:
            FORGET_LISTENERS.remove(self._forget)
            conn, self._conn = self._conn, None
            conn.close()

    async def _pump_with_connection(self, *, until_idle: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._store_turn = asyncio.Lock()
        lanes = [_Lane(kind, sender, self._bucket(kind)) for kind, sender in self._senders.items()]
        if not until_idle:
            self._takers = {lane.kind: lane for lane in lanes}
        per_lane = max(1, self._dispatch.concurrency)
        consumers = [
            asyncio.create_task(self._consume(lane), name=f"dispatch-{lane.kind.value}-{n}")
            for lane in lanes
            for n in range(per_lane)
        ]
        try:
            poll = self._dispatch.poll_interval_s
            last_poll = self._monotonic()
            first_round = True
            while not self._stopping:
                # Cleared before the claims, not after: a wake-up or a stop while a claim is out in a
                # thread keeps the event set, and the wait below returns at once.
                self._wake.clear()
                claimed = 0
                # A lane that came back short is only asked again when rows may have moved (a fallback,
                # a retry, a wake-up) or the poll interval passed: empty claims cost a transaction each.
                recheck = self._dirty or self._monotonic() - last_poll >= poll
                if recheck:
                    self._dirty = False
                    last_poll = self._monotonic()
                if recheck or first_round:
                    # Codes before alerts: each has a person waiting for it in a chat.
                    claimed += await self._send_codes(lanes)
                    # Replies and the other messages go in the lanes' queues ahead of waiting alerts.
                    claimed += self._claim_messages(lanes)
                    first_round = False
                for lane in lanes:
                    batch = self._alert_batch(lane)
                    room = batch - lane.queue.qsize()
                    if room < batch // 2 or (lane.exhausted and not recheck):
                        continue
                    rows = await self._off_loop(functools.partial(self._claim, lane.kind, room))
                    if rows:
                        self._actions.clear()
                    lane.exhausted = len(rows) < room
                    for row in rows:
                        lane.queue.put_nowait((LANE_OF.get(row.kind, 2), next(self._seq), row))
                    lane.outstanding += len(rows)
                    claimed += len(rows)
                self._raise_if_consumer_died(consumers)
                busy = any(lane.outstanding for lane in lanes)
                if until_idle and not (claimed or busy or self._pending or self._dirty):
                    break
                if claimed:
                    await asyncio.sleep(0)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.05 if until_idle else poll)
            # Finish what is in flight before leaving; unsent claims go back to the queue, and so do rows
            # handed off from now on.
            self._takers = None
            unsent_messages: list[int] = []
            for lane in lanes:
                while not lane.queue.empty():
                    unsent = lane.queue.get_nowait()[2]
                    lane.outstanding -= 1
                    if isinstance(unsent, ClaimedOutbound):
                        unsent_messages.append(unsent.id)
                        self._held.pop(unsent.id, None)
                        self._dropped.discard(unsent.id)
                    else:
                        self._release([unsent.id])
            if unsent_messages:
                self._release_messages(unsent_messages)
            while any(lane.outstanding for lane in lanes):
                self._raise_if_consumer_died(consumers)
                await asyncio.sleep(0.005)
        finally:
            self._takers = None
            # Results of sends that did happen are recorded even when we leave because of an error.
            if self._store_tasks:
                await asyncio.gather(*self._store_tasks, return_exceptions=True)
            self._flush(on_loop=True)
            for task in consumers:
                task.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            for lane in lanes:
                if isinstance(lane.bucket, SharedBucket):
                    lane.bucket.close()

    def _bucket(self, kind: ChannelKind) -> TokenBucket | SharedBucket:
        """This process's bucket on SQLite (the only sender); the installation's shared one elsewhere."""
        rate = rate_for(self._settings, kind)
        if self._is_sqlite or rate <= 0:
            return TokenBucket(rate, monotonic=self._monotonic)
        return SharedBucket(
            self._engine,
            channel=kind,
            sender=sender_of(self._settings, kind),
            rate=rate,
            monotonic=self._monotonic,
        )

    def _alert_batch(self, lane: _Lane) -> int:
        """How many deliveries a lane holds claimed: a few seconds of its rate, so none waits claimed for
        long while a reply goes ahead, and a claim never nears the claim timeout."""
        batch = max(1, self._dispatch.batch_size)
        rate = lane.bucket.rate
        if rate <= 0:
            return batch
        return max(2, min(batch, int(rate * ALERT_BATCH_S), self._dispatch.concurrency * 2 + 2))

    async def _off_loop(self, work: Callable[[], _T]) -> _T:
        """Run an alerts' claim in a thread on a database server, on the loop on SQLite.

        A claim on a server is a round trip; on the loop it would hold back the consumers' wake-ups for
        their send slots, and a late send followed by one on time is a burst the provider sees. SQLite
        answers from the same process, quicker than a hop to a thread.
        """
        if self._is_sqlite:
            return work()
        return await asyncio.to_thread(work)

    def _claim_messages(self, lanes: list[_Lane]) -> int:
        """Claim the due messages out (replies, questions, reconfirmations) into each lane's queue.

        On the loop, unlike the alerts' claims: meanwhile no claimed alert goes ahead of a reply.
        """
        claimed = 0
        for lane in lanes:
            with transaction(self._sessions) as session:
                rows = claim_outbound(
                    session,
                    vault=self._vault,
                    channel=lane.kind,
                    now=self._clock(),
                    worker=self.worker_id,
                    limit=MESSAGE_BATCH,
                    skip_locked=not self._is_sqlite,
                )
            if len(rows) == MESSAGE_BATCH:
                self._dirty = True
            for row in rows:
                self._held[row.id] = row.identity_id
                lane.queue.put_nowait((row.lane, next(self._seq), row))
            lane.outstanding += len(rows)
            claimed += len(rows)
        return claimed

    async def _send_message(self, lane: _Lane, row: ClaimedOutbound) -> Outcome:
        """Send one message out (its slot is taken); the result is recorded in a group like a delivery's."""
        message = message_of(row)
        if message is None:
            return Outcome(row, error=PermanentSendError("the message was erased", code="erased"))
        return await self._through_provider(lane, row, message)

    async def _send_codes(self, lanes: list[_Lane]) -> int:
        """Send the due verification codes, one by one within each lane's rate; returns how many tried."""
        tried = 0
        for lane in lanes:
            if lane.kind not in CODE_CHANNELS:
                continue
            with transaction(self._sessions) as session:
                codes = claim_codes(
                    session, channel=lane.kind, now=self._clock(), lease=CODE_LEASE, limit=CODE_BATCH
                )
            if len(codes) == CODE_BATCH:
                self._dirty = True
            for code in codes:
                receipt: SendReceipt | None = None
                error: SendError | None = None
                try:
                    recipient = self._vault.decrypt(code.phone_enc)
                    text = self._vault.decrypt(code.message_enc)
                    await lane.bucket.acquire()
                    receipt = await lane.sender.send(
                        OutgoingMessage(
                            channel=code.channel, recipient=recipient, text=text, language=code.language
                        )
                    )
                except DataKeyError:
                    error = PermanentSendError("code cannot be decrypted", code="data_key")
                except SendError as exc:
                    error = exc
                now = self._clock()
                attempts = code.attempts + 1
                retry = (
                    error is not None and error.retryable and attempts < self._dispatch.max_attempts
                )
                with transaction(self._sessions) as session:
                    if isinstance(error, RecipientOptedOut):
                        # The provider says the number stopped us: remember it like a STOP.
                        record_opt_out(session, phone_hash=code.phone_hash, now=now)
                    code_result(
                        session,
                        verification_id=code.id,
                        provider_id=receipt.provider_id if receipt is not None else None,
                        error=None if error is None else (error.code or type(error).__name__),
                        next_at=now + timedelta(seconds=self._backoff(attempts, None)) if retry else None,
                    )
                tried += 1
        return tried

    def _raise_if_consumer_died(self, consumers: Iterable[asyncio.Task[None]]) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        for task in consumers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _consume(self, lane: _Lane) -> None:
        unrecorded: deque[asyncio.Future[None]] = deque()
        while True:
            item = await lane.queue.get()
            if lane.bucket.rate > 0:
                # The send slot first, then the most urgent row: a reply claimed while this consumer
                # waited for its slot goes before the alerts claimed earlier.
                await lane.bucket.acquire()
                lane.queue.put_nowait(item)
                item = lane.queue.get_nowait()
            row = item[2]
            if isinstance(row, ClaimedOutbound):
                self._held.pop(row.id, None)
                if row.id in self._dropped:
                    # Its person said STOP after it was queued: the row is wiped already, nothing to record.
                    self._dropped.discard(row.id)
                    lane.outstanding -= 1
                    if self._wake is not None and lane.outstanding == 0:
                        self._wake.set()
                    continue
                outcome = await self._send_in_order(lane, row)
            else:
                outcome = await self._send(lane, row)
            while unrecorded and unrecorded[0].done():
                unrecorded.popleft().result()
            if len(unrecorded) >= MAX_UNRECORDED - 1:
                await unrecorded.popleft()
            unrecorded.append(self._record(lane, outcome))

    async def _send_in_order(self, lane: _Lane, row: ClaimedOutbound) -> Outcome:
        """Send a message once the earlier ones to the same person have left."""
        key = (row.channel, row.recipient or "")
        lock, users = self._recipients.get(key, (asyncio.Lock(), 0))
        self._recipients[key] = (lock, users + 1)
        try:
            async with lock:
                return await self._send_message(lane, row)
        finally:
            lock, users = self._recipients[key]
            if users > 1:
                self._recipients[key] = (lock, users - 1)
            else:
                del self._recipients[key]

    def _settle(self, lane: _Lane, future: asyncio.Future[None]) -> None:
        """A result became durable (or its commit failed): the row is done, the pump may claim more."""
        lane.outstanding -= 1
        if not future.cancelled() and future.exception() is not None and self._failure is None:
            self._failure = future.exception()
        low = lane.queue.qsize() <= self._dispatch.batch_size // 2
        if self._wake is not None and ((low and not lane.exhausted) or lane.outstanding == 0):
            self._wake.set()

    async def _send(self, lane: _Lane, row: ClaimedDelivery) -> Outcome:
        try:
            message = self._message(row)
        except SendError as exc:
            return Outcome(row, error=exc)
        return await self._through_provider(lane, row, message)

    async def _through_provider(
        self, lane: _Lane, row: ClaimedDelivery | ClaimedOutbound, message: OutgoingMessage
    ) -> Outcome:
        """Hand one message to the lane's channel; what came of it, any failure as a SendError."""
        self._in_send += 1
        try:
            receipt = await lane.sender.send(message)
        except SendError as exc:
            return Outcome(row, error=exc)
        except Exception as exc:  # an adapter bug or a transport error the adapter did not map
            log.exception("send on %s raised %s", row.channel.value, type(exc).__name__)
            return Outcome(row, error=SendError(str(exc), code=type(exc).__name__))
        finally:
            self._in_send -= 1
        return Outcome(row, provider_id=receipt.provider_id, segments=receipt.segments)

    # ---- composing ----------------------------------------------------------------------------

    def _action(self, action_id: int, kind: DeliveryKind) -> Action:
        # Cached per kind: closing messages are queued after the close and must see its outcome. Each
        # claim starts afresh (the pump clears the cache): a live action changes (a photo added by an update,
        # a later expiry).
        action = self._actions.get((action_id, kind))
        if action is None:
            with self._sessions() as session:
                action = session.get(Action, action_id)
            if action is None:
                raise SendError("action is gone", code="action_missing")
            self._actions[(action_id, kind)] = action
        return action

    def _update_photo(self, row: ClaimedDelivery) -> bool:
        """Whether the row is an update that brought a new photo (the chats show it, an SMS links to it)."""
        if row.kind is not DeliveryKind.UPDATE:
            return False
        key = (row.action_id, row.update_no)
        found = self._update_photos.get(key)
        if found is None:
            with self._sessions() as session:
                found = update_brought_photo(session, action_id=row.action_id, number=row.update_no)
            self._update_photos[key] = found
        return found

    def _update(self, row: ClaimedDelivery) -> ActionUpdate | None:
        if row.kind not in UPDATE_KINDS:
            return None
        key = (row.action_id, row.update_no)
        found = self._updates.get(key)
        if found is None:
            a = ActionUpdate.__table__.c  # type: ignore[attr-defined]
            with self._sessions() as session:
                found = session.scalars(
                    select(ActionUpdate).where(a.action_id == row.action_id, a.number == row.update_no)
                ).first()
            if found is None:
                raise PermanentSendError("update is gone", code="update_missing")
            self._updates[key] = found
        return found

    def _message(self, row: ClaimedDelivery) -> OutgoingMessage:
        from bot.channels.base import PermanentSendError

        if row.address_enc is None:
            raise PermanentSendError("identity was erased", code="erased")
        try:
            recipient = self._vault.decrypt(row.address_enc)
        except DataKeyError as exc:
            raise PermanentSendError("address cannot be decrypted", code="data_key") from exc
        action = self._action(row.action_id, row.kind)
        update_ = self._update(row)
        key = (row.action_id, row.kind, row.channel, row.language, row.update_no)
        text = self._message_cache.get(key)
        relay = self._relay(row) if row.kind in RELAY_KINDS else None
        if row.kind in RELAY_KINDS:
            # A relay's text carries its own tip link, so it is not cached per action.
            text = self._texts.text(
                action, kind=row.kind, channel=row.channel, lang=row.language, relay=relay, update=update_
            )
        elif text is None:
            text = self._texts.text(
                action,
                kind=row.kind,
                channel=row.channel,
                lang=row.language,
                update=update_,
                update_photo=self._update_photo(row),
            )
            self._message_cache[key] = text
        if row.channel is ChannelKind.WHATSAPP and not self._in_whatsapp_window(row):
            sid = template_for(self._settings, action.type, row.kind)
            if sid is None:
                raise PermanentSendError("no WhatsApp template configured", code="no_template")
            own = relay if sid == self._settings.whatsapp_templates.relay else None
            variables = self._texts.template_variables(
                action, kind=row.kind, lang=row.language, relay=own, update=update_
            )
            return OutgoingMessage(
                channel=row.channel,
                recipient=recipient,
                text=text,
                template_sid=sid,
                template_variables=variables,
            )
        photo = None
        if row.channel in PHOTO_CHANNELS and (
            (action.has_photo and row.kind is DeliveryKind.ALERT) or self._update_photo(row)
        ):
            photo = self._texts.photo_url(action.code)
        return OutgoingMessage(
            channel=row.channel,
            recipient=recipient,
            text=text,
            photo_url=photo,
            language=row.language,
            call_menu=row.kind in CALL_MENU_KINDS,
        )

    def _relay(self, row: ClaimedDelivery) -> RelayRef | None:
        # Relays are few per action, so one small read each for the relay's id and platform costs little.
        with self._sessions() as session:
            found = relay_of_delivery(session, delivery_id=row.id)
        return RelayRef(*found) if found is not None else None

    def _in_whatsapp_window(self, row: ClaimedDelivery) -> bool:
        if row.last_inbound_at is None:
            return False
        return self._clock() - row.last_inbound_at < timedelta(hours=self._settings.whatsapp_window_hours)

    # ---- storage ------------------------------------------------------------------------------

    def _claim(self, kind: ChannelKind, limit: int) -> list[ClaimedDelivery]:
        """Mark up to `limit` due deliveries of a channel as ours, nearest first, and load them."""
        if limit <= 0:
            return []
        with transaction(self._sessions) as session:
            return claim_deliveries(
                session,
                channel=kind,
                limit=limit,
                worker=self.worker_id,
                now=self._clock(),
                skip_locked=not self._is_sqlite,
            )

    def _release(self, ids: list[int]) -> None:
        with transaction(self._sessions) as session:
            release_deliveries(session, ids=ids, worker=self.worker_id)

    def _record(self, lane: _Lane, outcome: Outcome) -> asyncio.Future[None]:
        """Queue the outcome for the next group commit; the future is done once it is durable.

        The commit runs on the event loop (a thread would wait for the GIL behind the senders), a moment
        after the first result came in, so that the results of concurrent sends share one transaction;
        the consumers keep sending meanwhile (see `_consume`), so the group costs no throughput.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(lambda done: self._settle(lane, done))
        self._pending.append((outcome, future))
        # Nobody else is sending: no result can join this group, so waiting would only cost time.
        if len(self._pending) >= self._group_size or self._in_send == 0:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = loop.call_later(FLUSH_DELAY_S, self._flush)
        return future

    def _flush(self, *, on_loop: bool = False) -> None:
        """Store the pending results: here when the writer is free, else in a thread.

        On SQLite a conversation step in a worker thread may hold this process's writer lock; waiting for
        it here would stop the event loop, and with it every webhook and every send, for as long as the
        step takes. Then the group goes to a thread, behind any group already there (`on_loop` forces
        the wait here: the pump is stopping).
        """
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        outcomes = [outcome for outcome, _ in pending]
        futures = [future for _, future in pending]
        lock = None if on_loop else writer_lock(self._engine)
        if lock is not None and (self._storing or not lock.acquire(blocking=False)):
            self._storing += 1
            task = asyncio.get_running_loop().create_task(self._store_off_loop(outcomes, futures))
            self._store_tasks.add(task)
            task.add_done_callback(self._store_tasks.discard)
            return
        try:
            self._store(outcomes)
        except Exception as exc:
            self._stored(futures, exc)
            return
        finally:
            if lock is not None:
                lock.release()
        self._stored(futures, None)

    async def _store_off_loop(self, outcomes: list[Outcome], futures: list[asyncio.Future[None]]) -> None:
        try:
            assert self._store_turn is not None, "stores go to a thread only while the pump runs"
            async with self._store_turn:
                await asyncio.to_thread(self._store, outcomes, own_connection=True)
        except Exception as exc:
            self._stored(futures, exc)
        else:
            self._stored(futures, None)
        finally:
            self._storing -= 1

    def _stored(self, futures: list[asyncio.Future[None]], error: Exception | None) -> None:
        for future in futures:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        if error is None and self._dirty and self._wake is not None:
            self._wake.set()

    def _store(self, outcomes: list[Outcome], *, own_connection: bool = False) -> None:
        """Record the results of sends in one transaction (`own_connection`: in a thread, not the pump's)."""
        now = self._clock()
        sent = [
            DeliverySent(o.row.id, o.row.attempts + 1, o.provider_id, o.segments)
            for o in outcomes
            if o.error is None and isinstance(o.row, ClaimedDelivery)
        ]
        sent_messages = [
            (o.row.id, o.row.attempts + 1, o.provider_id)
            for o in outcomes
            if o.error is None and isinstance(o.row, ClaimedOutbound)
        ]

        def mark_sent(conn: Connection) -> None:
            if sent:
                deliveries_sent(conn, sent=sent, now=now)
                self._report.sent += len(sent)
            if sent_messages:
                outbound_sent(conn, sent=sent_messages, now=now)
                self._report.messages += len(sent_messages)

        if len(sent) + len(sent_messages) == len(outcomes):
            # The common case, kept lean: one executemany per table on the pump's own connection (a pool
            # checkout and its reset cost as much as the statement), no ORM session.
            conn = None if own_connection else self._conn
            if conn is None:
                with writer_turn(self._engine), self._engine.begin() as conn:
                    mark_sent(conn)
            else:
                with writer_turn(conn):
                    try:
                        mark_sent(conn)
                        conn.commit()
                    except BaseException:
                        conn.rollback()
                        raise
            return
        retry: list[DeliveryRetry] = []
        with transaction(self._sessions) as session:
            mark_sent(session.connection())
            for o in outcomes:
                if o.error is None:
                    continue
                if isinstance(o.row, ClaimedOutbound):
                    self._message_failed(session, o.row, o.error, now)
                    continue
                attempts = o.row.attempts + 1
                code = o.error.code or type(o.error).__name__
                if o.error.retryable and attempts < self._dispatch.max_attempts:
                    next_at = now + timedelta(seconds=self._backoff(attempts, o.error.retry_after))
                    retry.append(DeliveryRetry(o.row.id, attempts, next_at, code))
                    continue
                if isinstance(o.error, RecipientOptedOut) and o.row.identity_id is not None:
                    opt_out_identity(session, identity_id=o.row.identity_id, now=now)
                moved = fall_back(
                    session,
                    delivery_id=o.row.id,
                    participant_id=o.row.participant_id if o.row.kind is DeliveryKind.ALERT else None,
                    identity_id=o.row.identity_id,
                    tried=o.row.tried,
                    error_code=code,
                    now=now,
                )
                if moved:
                    self._report.fell_back += 1
                    self._dirty = True
                else:
                    delivery_given_up(session, delivery_id=o.row.id, attempts=attempts)
                    self._report.failed += 1
            if retry:
                deliveries_retried(session.connection(), retries=retry, now=now)
                self._report.retried += len(retry)
        for o in outcomes:
            if o.error is not None and not o.error.retryable:
                what = "message" if isinstance(o.row, ClaimedOutbound) else "delivery"
                log.info("%s %d on %s: %s", what, o.row.id, o.row.channel.value, o.error.code)

    def _message_failed(
        self, session: Session, row: ClaimedOutbound, error: SendError, now: datetime
    ) -> None:
        """A message out that did not go: queued again with a backoff, or failed (wiped)."""
        attempts = row.attempts + 1
        retry = error.retryable and attempts < self._dispatch.max_attempts
        if isinstance(error, RecipientOptedOut) and row.identity_id is not None:
            opt_out_identity(session, identity_id=row.identity_id, now=now)
        outbound_result(
            session,
            outbound_id=row.id,
            attempts=attempts,
            provider_id=None,
            error=error.code or type(error).__name__,
            next_at=now + timedelta(seconds=self._backoff(attempts, error.retry_after)) if retry else None,
            now=now,
        )
        if retry:
            self._dirty = True

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before try `attempts + 1`: exponential, capped, at least what the provider asked."""
        base = self._dispatch.backoff_base_s * 2 ** (attempts - 1)
        return max(min(base, self._dispatch.backoff_max_s), retry_after or 0.0)


def apply_status(sessions: SessionFactory, update_: StatusUpdate, *, clock: Clock) -> bool:
    """Record a provider's delivery receipt on its delivery (by provider id) in its own transaction."""
    with transaction(sessions) as session:
        return store_status(session, receipt=update_, now=clock())
