"""Builds every long-lived object from the settings, in one place, and hands them to the app.

What is wired depends on the settings: Telegram when `TELEGRAM_BOT_TOKEN` is set, Twilio (SMS, WhatsApp,
voice) when `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN` are. The simulator (`SIMULATOR=true`) carries
every channel, and runs only when no real provider is configured (`Settings.simulator_runs` says why).
The dispatcher and the scheduler always run with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.alerts import AlertTexts
from bot.channels.base import Channel
from bot.channels.simulator import SimulatorChannel
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.flows.engine import Flow
from bot.flows.reconfirm import ReconfirmFlow
from bot.flows.relay import RelayFlow, RelayGroupFlow
from bot.flows.signup_link import SignupLinkFlow
from bot.geocoder import Geocoder, make_geocoder, municipality_label
from bot.inbox import Inbox
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from nlu.types import Parser
from storage.actions import apply_status
from storage.crypto import DataVault, load_or_create_key, split_keys
from storage.db import SessionFactory, make_engine, migrate, session_factory, transaction
from storage.geo import PostcodeBook
from storage.models import ProcessedEvent
from storage.vocabulary import ChannelKind, StatusUpdate

if TYPE_CHECKING:
    from bot.controlroom.tipfeed import TipFeed
    from scheduler.jobs import JobContext
    from scheduler.service import SchedulerService

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[Any]]


@dataclass
class Runtime:
    """The wired system: storage, catalogue, NLU, router, inbox, channels, outbox and scheduler."""

    settings: Settings
    clock: Clock
    engine: Engine
    sessions: SessionFactory
    vault: DataVault
    book: PostcodeBook
    catalogue: Catalogue
    parser: Parser
    router: ConversationRouter
    inbox: Inbox
    simulator: SimulatorChannel
    senders: dict[ChannelKind, Channel]
    texts: AlertTexts
    dispatcher: Dispatcher
    scheduler: SchedulerService | None = None
    tip_feed: TipFeed | None = None
    geocoder: Geocoder | None = None
    """Place names to coordinates: the form's search and tips' places."""
    simulator_on: bool = False
    """The simulator carries every channel and its page and API are served (no real provider is set)."""
    routers: list[APIRouter] = field(default_factory=list)
    """Provider webhooks and feature APIs, included by the app."""
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)

    async def start(self) -> None:
        """Start background work (polling, dispatcher, scheduler)."""
        for hook in self.on_start:
            await hook()

    async def stop(self) -> None:
        """Stop background work, newest first."""
        for hook in reversed(self.on_stop):
            try:
                await hook()
            except Exception:
                log.exception("a stop hook failed; stopping the rest")
        self.engine.dispose()

    def wake_dispatcher(self) -> None:
        """Tell the outbox worker that deliveries were queued."""
        self.dispatcher.wake()


def data_key(settings: Settings) -> str:
    """DATA_KEY from the settings; in development a key kept in a file is made on first use."""
    if settings.data_key:
        return settings.data_key
    if settings.environment == "production":
        raise RuntimeError("DATA_KEY is required in production")
    return load_or_create_key(settings.data_key_file)


def lookup_key(settings: Settings) -> str:
    """LOOKUP_KEY from the settings; in development derived from the data key as it always was.

    With DATA_KEY set, its oldest key (the hashes every installation stored before LOOKUP_KEY); else a
    file made on first use from the development data key, so that this key outlives a DATA_KEY rotation.
    """
    if settings.lookup_key:
        return settings.lookup_key
    if settings.environment == "production":
        raise RuntimeError("LOOKUP_KEY is required in production")
    if settings.data_key:
        return split_keys(settings.data_key)[-1]
    return load_or_create_key(
        settings.lookup_key_file, initial=split_keys(load_or_create_key(settings.data_key_file))[-1]
    )


def make_vault(settings: Settings) -> DataVault:
    """The vault with the data keys and the lookup keys the settings give."""
    return DataVault(data_key(settings), lookup_keys=lookup_key(settings))


def make_parser(settings: Settings) -> Parser:
    """The NLU parser the settings ask for (built-in unless RASA_URL is set)."""
    from nlu.factory import make_parser as factory

    return factory(
        rasa_url=settings.rasa_url, rasa_timeout_s=settings.rasa_timeout_s, timezone=settings.timezone
    )


def _background(
    name: str, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], None]
) -> tuple[Hook, Hook]:
    """Start/stop hooks for a long-running coroutine that ends when `stop()` is called."""
    task: asyncio.Task[None] | None = None

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(run(), name=name)

    async def finish() -> None:
        stop()
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=10)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return start, finish


def build_runtime(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    run_migrations: bool = True,
    flows: list[Flow] | None = None,
    telegram_options: dict[str, Any] | None = None,
    twilio_http: Any = None,
    tips: TipServices | None = None,
) -> Runtime:
    """Wire the whole system from the settings.

    `telegram_options` and `twilio_http` let tests point the providers at local fakes (pacing off, a
    custom HTTP client), `tips` lets them set the tip services' timings; the rest comes from the settings.
    """
    tips = tips or TipServices.deferred(settings)
    if run_migrations:
        migrate(settings.database.url)
    engine = make_engine(settings.database.url)
    sessions = session_factory(engine)
    vault = make_vault(settings)
    book = PostcodeBook.load(settings.postcode_data)
    catalogue = Catalogue.load()
    geocoder = make_geocoder(
        book,
        url=settings.geocoder_url,
        timeout_s=settings.geocoder_timeout_s,
        municipality_label=municipality_label(catalogue),
    )
    parser = make_parser(settings)
    wiring = _Wiring()
    router = ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=parser,
        catalogue=catalogue,
        settings=settings,
        clock=clock,
        flows=[SignupLinkFlow(), ReconfirmFlow(), RelayFlow(), RelayGroupFlow(), *tips.flows, *(flows or [])],
        on_code_queued=lambda: wiring.dispatcher_wake(),
    )
    simulator = SimulatorChannel(clock=clock)
    senders: dict[ChannelKind, Channel] = {}
    if settings.simulator_runs:
        senders.update(dict.fromkeys(simulator.kinds, simulator))
    elif settings.simulator:
        log.warning(
            "the simulator is off: %s is configured, and a simulated sender could speak for a real person",
            " and ".join(settings.real_providers),
        )
    inbox = Inbox(
        handle=router.handle, senders=senders, sessions=sessions, clock=clock, handler_records_keys=True
    )

    def wake_dispatcher() -> None:
        wiring.dispatcher_wake()

    _wire_providers(
        settings,
        wiring,
        senders=senders,
        inbox=inbox,
        clock=clock,
        catalogue=catalogue,
        on_status=status_recorder(sessions, clock, wake_dispatcher),
        telegram_options=telegram_options or {},
        twilio_http=twilio_http,
    )
    # Relayed alerts end with tip links to our own WhatsApp number and Telegram bot.
    texts = AlertTexts.from_settings(catalogue, settings)
    dispatcher = Dispatcher(sessions, senders, clock, settings, vault=vault, texts=texts)
    wiring.dispatcher_wake = dispatcher.wake
    start, stop = _background("dispatcher", dispatcher.run, dispatcher.stop)
    runtime = Runtime(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        vault=vault,
        book=book,
        catalogue=catalogue,
        parser=parser,
        router=router,
        inbox=inbox,
        simulator=simulator,
        senders=senders,
        texts=texts,
        dispatcher=dispatcher,
        simulator_on=settings.simulator_runs,
        routers=wiring.routers,
        on_start=[*wiring.on_start, start],
        on_stop=[geocoder.aclose, *wiring.on_stop, stop],
        geocoder=geocoder,
    )
    # Tips: their storage and senders, their API, the forwarder's start/stop and the control room's feed.
    tips.bind(
        sessions=sessions,
        vault=vault,
        clock=clock,
        catalogue=catalogue,
        senders=senders,
        geocoder=geocoder,
        book=book,
    )
    runtime.routers.append(tips.api_router())
    runtime.on_start.append(tips.start)
    runtime.on_stop.append(tips.stop)
    runtime.tip_feed = tips.feed
    runtime.scheduler = _attach_scheduler(runtime)
    return runtime


def job_context(runtime: Runtime) -> JobContext:
    """The scheduler's jobs' context from the wired runtime."""
    from scheduler.jobs import JobContext

    return JobContext(
        sessions=runtime.sessions,
        settings=runtime.settings,
        clock=runtime.clock,
        vault=runtime.vault,
        catalogue=runtime.catalogue,
        senders=runtime.senders,
        book=runtime.book,
    )


def _attach_scheduler(runtime: Runtime) -> SchedulerService:
    """The runtime's scheduler, hooked to its start and stop (unless SCHEDULER_ENABLED=false)."""
    from scheduler.service import SchedulerService

    service = SchedulerService(job_context(runtime))
    if runtime.settings.scheduler.enabled:
        runtime.on_start.append(service.start)
        runtime.on_stop.append(service.stop)
    return service


@dataclass
class _Wiring:
    """What the providers add to the runtime while it is being built."""

    routers: list[APIRouter] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    dispatcher_wake: Callable[[], None] = lambda: None


def status_recorder(
    sessions: SessionFactory, clock: Clock, wake: Callable[[], None]
) -> Callable[[StatusUpdate], Awaitable[None]]:
    """A handler that applies a provider's delivery receipt to the outbox (a failed alert falls back).

    The receipt's key is recorded in the transaction that applies it, so each receipt is applied once
    and a receipt whose apply failed (answered 503) is applied when the provider delivers it again.
    """

    def apply(update: StatusUpdate) -> bool:
        try:
            with transaction(sessions) as session:
                if update.key:
                    if session.get(ProcessedEvent, update.key) is not None:
                        return False
                    session.add(ProcessedEvent(key=update.key, at=clock()))
                    session.flush()
                return apply_status(session, receipt=update, now=clock())
        except IntegrityError:
            return False  # another worker applied the same receipt at the same moment

    async def record(update: StatusUpdate) -> None:
        if await asyncio.to_thread(apply, update):
            wake()

    return record


def _wire_providers(
    settings: Settings,
    wiring: _Wiring,
    *,
    senders: dict[ChannelKind, Channel],
    inbox: Inbox,
    clock: Clock,
    catalogue: Catalogue,
    on_status: Callable[[StatusUpdate], Awaitable[None]],
    telegram_options: dict[str, Any],
    twilio_http: Any,
) -> None:
    if settings.telegram.bot_token:
        from bot.channels.telegram import TelegramChannel

        telegram = TelegramChannel(settings, inbox.receive, clock, catalogue=catalogue, **telegram_options)
        senders.update(dict.fromkeys(telegram.kinds, telegram))
        wiring.routers.append(telegram.router())
        wiring.on_start.append(telegram.start)
        wiring.on_stop.append(telegram.stop)
    if settings.twilio.account_sid and settings.twilio.auth_token:
        from bot.channels.twilio import TwilioChannel
        from bot.channels.twilio_webhooks import recorded_by_handler

        twilio = TwilioChannel(
            settings,
            inbox.receive,
            on_status,
            clock,
            twilio_http,
            catalogue=catalogue,
            first_time=recorded_by_handler,
        )
        senders.update(dict.fromkeys(twilio.kinds, twilio))
        wiring.routers.append(twilio.router())
        wiring.on_stop.append(twilio.aclose)
    missing = [k.value for k in ChannelKind if k not in senders]
    if missing:
        log.warning("no provider carries %s: messages on it are not sent", ", ".join(missing))
