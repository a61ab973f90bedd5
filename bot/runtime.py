"""The composition root: builds every long-lived object from the settings, in one straight line.

The order is storage (engine, sessions, vault, postcode book) → catalogue, parser, geocoder → senders
(Telegram, Twilio, simulator) → dispatcher → tips → scheduler → conversations (router, inbox) → the
channels' receiving side (webhooks, polling) → web routes. Each part is a `Subsystem` (start, stop, the
routes it serves); the runtime starts them in order and stops them in reverse.

What is wired depends on the settings: Telegram when `TELEGRAM_BOT_TOKEN` is set, Twilio (SMS, WhatsApp,
voice) when `TWILIO_ACCOUNT_SID`/`TWILIO_AUTH_TOKEN` are. The simulator (`SIMULATOR=true`) carries
every channel, and runs only when no real provider is configured (`Settings.simulator_runs` says why).
The dispatcher and the scheduler always run with the server. Tests and benchmarks build the app with
these same functions; `clock`, `telegram_options`, `twilio_http` and `timings` are the hooks they may set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import APIRouter
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.alerts import AlertTexts
from bot.channels.base import Channel
from bot.channels.simulator import SimulatorChannel
from bot.clock import Clock, utcnow
from bot.config import Settings
from bot.controlroom.tipfeed import TipFeed
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.flows.engine import Flow
from bot.flows.reconfirm import ReconfirmFlow
from bot.flows.relay import RelayFlow, RelayGroupFlow
from bot.flows.signup_link import SignupLinkFlow
from bot.geocoder import Geocoder, make_geocoder, municipality_label
from bot.inbox import Inbox
from bot.outbox import Handoff
from bot.texts import Catalogue
from bot.tips.wiring import Timings, TipServices
from nlu.types import Parser
from scheduler.jobs import JobContext
from scheduler.service import SchedulerService
from storage.actions import apply_status
from storage.crypto import DataVault, load_or_create_key, split_keys
from storage.db import SessionFactory, make_engine, migrate, session_factory, transaction
from storage.geo import PostcodeBook
from storage.models import ProcessedEvent
from storage.vocabulary import ChannelKind, StatusUpdate

log = logging.getLogger(__name__)


class Subsystem(Protocol):
    """A part of the running system: started in order, stopped in reverse, serving its routes."""

    async def start(self) -> None:
        """Start background work (returns once it runs)."""
        ...

    async def stop(self) -> None:
        """Stop background work and release what it holds."""
        ...

    def routes(self) -> list[APIRouter]:
        """The HTTP routes it serves (webhooks, APIs); empty for none."""
        ...


class BackgroundTask:
    """A long-running coroutine as a subsystem: started as a task, ended by its `stop` callback."""

    def __init__(
        self, name: str, run: Callable[[], Coroutine[Any, Any, None]], stop: Callable[[], None]
    ) -> None:
        self._name = name
        self._run = run
        self._stop = stop
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the coroutine as a task."""
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        """Ask it to end and wait a while; cancel it if it does not."""
        self._stop()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def routes(self) -> list[APIRouter]:
        """No routes."""
        return []


class Closing:
    """Something that only needs closing at the end (the geocoder's HTTP client) as a subsystem."""

    def __init__(self, close: Callable[[], Awaitable[Any]]) -> None:
        self._close = close

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Close it."""
        await self._close()

    def routes(self) -> list[APIRouter]:
        """No routes."""
        return []


@dataclass
class Runtime:
    """The wired system: storage, catalogue, NLU, senders, dispatcher, tips, scheduler and conversations."""

    settings: Settings
    clock: Clock
    engine: Engine
    sessions: SessionFactory
    vault: DataVault
    book: PostcodeBook
    catalogue: Catalogue
    parser: Parser
    geocoder: Geocoder
    """Place names to coordinates: the form's search and tips' places."""
    simulator: SimulatorChannel
    senders: dict[ChannelKind, Channel]
    texts: AlertTexts
    dispatcher: Dispatcher
    tips: TipServices
    scheduler: SchedulerService
    router: ConversationRouter
    inbox: Inbox
    subsystems: list[Subsystem]
    """Started in this order, stopped in reverse."""
    simulator_on: bool = False
    """The simulator carries every channel and its page and API are served (no real provider is set)."""

    @property
    def tip_feed(self) -> TipFeed:
        """The control room's tips."""
        return self.tips.feed

    @property
    def routers(self) -> list[APIRouter]:
        """Provider webhooks and feature APIs the subsystems serve, included by the app."""
        return [router for part in self.subsystems for router in part.routes()]

    async def start(self) -> None:
        """Start the subsystems in order (polling, dispatcher, tips, scheduler)."""
        for part in self.subsystems:
            await part.start()

    async def stop(self) -> None:
        """Stop the subsystems, last started first; one that fails does not keep the rest running."""
        for part in reversed(self.subsystems):
            try:
                await part.stop()
            except Exception:
                log.exception("a subsystem failed to stop; stopping the rest")
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


def build_runtime(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    run_migrations: bool = True,
    telegram_options: dict[str, Any] | None = None,
    twilio_http: Any = None,
    timings: Timings | None = None,
    senders: Mapping[ChannelKind, Channel] | None = None,
) -> Runtime:
    """Wire the whole system from the settings, in one straight line.

    `telegram_options` and `twilio_http` let tests point the providers at local fakes (pacing off, a
    custom HTTP client), `timings` sets the tip services' polling and backoff, `senders` replaces the
    sending side of some channels (a benchmark counts sends without a provider); the rest is the settings'.
    """
    # Storage.
    if run_migrations:
        migrate(settings.database.url)
    engine = make_engine(settings.database.url, lock_wait_s=settings.database.lock_wait_s)
    sessions = session_factory(engine)
    vault = make_vault(settings)
    book = PostcodeBook.load(settings.postcode_data)
    catalogue = Catalogue.load()
    parser = make_parser(settings)
    geocoder = make_geocoder(
        book,
        url=settings.geocoder_url,
        timeout_s=settings.geocoder_timeout_s,
        municipality_label=municipality_label(catalogue),
    )

    # Senders: every channel's sending side, by kind.
    simulator = SimulatorChannel(clock=clock)
    telegram, twilio = _provider_channels(settings, clock, catalogue, telegram_options or {}, twilio_http)
    senders = _senders(settings, simulator, telegram, twilio, replaced=senders or {})

    # The one way out. Relayed alerts end with tip links to our own WhatsApp number and Telegram bot.
    texts = AlertTexts.from_settings(catalogue, settings)
    dispatcher = Dispatcher(sessions, senders, clock, settings, vault=vault, texts=texts)

    tips = TipServices(
        sessions=sessions,
        vault=vault,
        settings=settings,
        clock=clock,
        catalogue=catalogue,
        senders=senders,
        geocoder=geocoder,
        book=book,
        timings=timings,
        on_queued=dispatcher.wake,
    )
    scheduler = SchedulerService(
        JobContext(
            sessions=sessions,
            settings=settings,
            clock=clock,
            vault=vault,
            catalogue=catalogue,
            senders=senders,
            book=book,
        )
    )

    # Conversations: from a message to a flow step, once and in order per sender.
    router = conversation_router(
        settings,
        sessions=sessions,
        vault=vault,
        book=book,
        parser=parser,
        catalogue=catalogue,
        clock=clock,
        tips=tips,
        on_code_queued=dispatcher.wake,
        on_queued=dispatcher.wake,
        handoff=dispatcher,
    )
    inbox = Inbox(handle=router.handle)

    # The channels' receiving side hands messages to the inbox and receipts to the outbox.
    receiving: list[Subsystem] = []
    if telegram is not None:
        receiving.append(telegram.receiving(inbox.receive))
    if twilio is not None:
        # No `first_time`: the status recorder records each receipt's key in the transaction applying it.
        on_status = status_recorder(sessions, clock, dispatcher.wake)
        receiving.append(twilio.receiving(inbox.receive, on_status, first_time=None))

    # Started in this order, stopped in reverse: the channels outlive the workers that send through them.
    subsystems: list[Subsystem] = [
        Closing(geocoder.aclose),
        *receiving,
        BackgroundTask("dispatcher", dispatcher.run, dispatcher.stop),
        tips,
    ]
    if settings.scheduler.enabled:
        subsystems.append(scheduler)
    return Runtime(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        vault=vault,
        book=book,
        catalogue=catalogue,
        parser=parser,
        geocoder=geocoder,
        simulator=simulator,
        senders=senders,
        texts=texts,
        dispatcher=dispatcher,
        tips=tips,
        scheduler=scheduler,
        router=router,
        inbox=inbox,
        subsystems=subsystems,
        simulator_on=settings.simulator_runs,
    )


def conversation_router(
    settings: Settings,
    *,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    parser: Parser,
    catalogue: Catalogue,
    clock: Clock,
    tips: TipServices,
    flows: Sequence[Flow] = (),
    on_code_queued: Callable[[], None] | None = None,
    on_queued: Callable[[], None] | None = None,
    handoff: Handoff | None = None,
) -> ConversationRouter:
    """The conversation router with every flow the bot runs (reconfirmation, relays, tips, then `flows`)."""
    return ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=parser,
        catalogue=catalogue,
        settings=settings,
        clock=clock,
        flows=[SignupLinkFlow(), ReconfirmFlow(), RelayFlow(), RelayGroupFlow(), *tips.flows, *flows],
        on_code_queued=on_code_queued,
        on_queued=on_queued,
        handoff=handoff,
    )


def job_context(runtime: Runtime) -> JobContext:
    """The scheduler's jobs' context of the wired runtime."""
    return runtime.scheduler.context


def runtime_job_context(settings: Settings) -> JobContext:
    """The job context of the whole runtime (channels included): for running jobs that send."""
    return job_context(build_runtime(settings))


def storage_job_context(settings: Settings) -> JobContext:
    """A job context on storage alone (no channels, no NLU): for listing jobs and reports."""
    migrate(settings.database.url)
    return JobContext(
        sessions=session_factory(make_engine(settings.database.url)),
        settings=settings,
        clock=utcnow,
        vault=make_vault(settings),
        catalogue=Catalogue.load(),
        book=PostcodeBook.load(settings.postcode_data),
    )


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


if TYPE_CHECKING:
    from bot.channels.telegram import TelegramChannel
    from bot.channels.twilio import TwilioChannel


def _provider_channels(
    settings: Settings,
    clock: Clock,
    catalogue: Catalogue,
    telegram_options: dict[str, Any],
    twilio_http: Any,
) -> tuple[TelegramChannel | None, TwilioChannel | None]:
    """The providers the settings configure (their libraries are imported only when configured)."""
    telegram = twilio = None
    if settings.telegram.bot_token:
        from bot.channels.telegram import TelegramChannel

        telegram = TelegramChannel(settings, clock, catalogue=catalogue, **telegram_options)
    if settings.twilio.account_sid and settings.twilio.auth_token:
        from bot.channels.twilio import TwilioChannel

        twilio = TwilioChannel(settings, clock, twilio_http, catalogue=catalogue)
    return telegram, twilio


def _senders(
    settings: Settings,
    simulator: SimulatorChannel,
    telegram: TelegramChannel | None,
    twilio: TwilioChannel | None,
    *,
    replaced: Mapping[ChannelKind, Channel],
) -> dict[ChannelKind, Channel]:
    """Which channel sends each kind of message (`replaced` wins)."""
    senders: dict[ChannelKind, Channel] = {}
    if settings.simulator_runs:
        senders.update(dict.fromkeys(simulator.kinds, simulator))
    elif settings.simulator:
        log.warning(
            "the simulator is off: %s is configured, and a simulated sender could speak for a real person",
            " and ".join(settings.real_providers),
        )
    for channel in (telegram, twilio):
        if channel is not None:
            senders.update(dict.fromkeys(channel.kinds, channel))
    senders.update(replaced)
    missing = [k.value for k in ChannelKind if k not in senders]
    if missing:
        log.warning("no provider carries %s: messages on it are not sent", ", ".join(missing))
    return senders
