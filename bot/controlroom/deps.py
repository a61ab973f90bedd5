"""What the control room needs from the wired system, and the page helpers every route shares."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.alerts import AlertTexts
from bot.clock import Clock
from bot.config import Settings
from bot.controlroom.formats import counter, euro, number
from bot.controlroom.passwords import PasswordWorkers
from bot.controlroom.throttle import LoginThrottle
from bot.controlroom.tipfeed import NoTipFeed, TipFeed, TipView
from bot.geocoder import Geocoder, PostcodeGeocoder, municipality_label
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES, Catalogue, MissingText
from storage.actions import awaiting_approval
from storage.cap_changes import actions_with_waiting_changes
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import Action, Operator, OperatorRole, OperatorSession
from storage.regions import coverage, touched_by_action

TEMPLATES = Path(__file__).parent / "templates"
PREFIX = "/controlroom"
SESSION_COOKIE = "cr_session"
PRE_COOKIE = "cr_pre"
LANG_COOKIE = "cr_lang"


class RuntimeLike(Protocol):
    """The parts of `bot.runtime.Runtime` the control room reads."""

    @property
    def settings(self) -> Settings:
        """The runtime's settings."""
        ...

    @property
    def clock(self) -> Clock:
        """The runtime's clock."""
        ...

    @property
    def sessions(self) -> SessionFactory:
        """The runtime's sessions."""
        ...

    @property
    def vault(self) -> DataVault:
        """The runtime's vault."""
        ...

    @property
    def book(self) -> PostcodeBook:
        """The runtime's book."""
        ...

    @property
    def catalogue(self) -> Catalogue:
        """The runtime's catalogue."""
        ...


@dataclass
class ControlRoom:
    """Everything the control-room routes use, built once per app."""

    settings: Settings
    clock: Clock
    sessions: SessionFactory
    vault: DataVault
    book: PostcodeBook
    catalogue: Catalogue
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    tips: TipFeed = field(default_factory=NoTipFeed)
    on_queued: Callable[[], None] | None = None
    stream_poll_s: float = 0.5
    stream_heartbeat_s: float = 15.0
    geocoder: Geocoder | None = None
    """The place search and tips' places; None: the postcode table (set in `__post_init__`)."""
    password_checks_at_once: int = 2
    templates: Jinja2Templates = field(init=False)
    texts: AlertTexts = field(init=False)
    passwords: PasswordWorkers = field(init=False)
    """argon2 off the event loop, a bounded number at once."""
    throttle: LoginThrottle = field(init=False)
    """Failed logins per client address and per account."""
    recheck: StreamRecheck = field(init=False)
    """Wakes the live streams to check their sessions at once (after an admin ended some)."""

    def __post_init__(self) -> None:
        self.passwords = PasswordWorkers(self.hasher, at_once=self.password_checks_at_once)
        self.throttle = LoginThrottle(self.clock)
        self.recheck = StreamRecheck()
        if self.geocoder is None:
            self.geocoder = PostcodeGeocoder(self.book, municipality_label=municipality_label(self.catalogue))
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.globals["prefix"] = PREFIX
        self.templates.env.filters["local"] = self.local_time
        self.templates.env.filters["seen"] = self.seen_time
        self.templates.env.globals["timezone"] = self.settings.timezone
        # With the settings' link bases: a preview's SMS shows the page link an action with a photo gets.
        self.texts = AlertTexts.from_settings(self.catalogue, self.settings)

    def local_time(self, value: datetime, fmt: str = "%d-%m %H:%M") -> str:
        """A stored (UTC) time as the control room's wall clock shows it."""
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(ZoneInfo(self.settings.timezone)).strftime(fmt)

    def seen_time(self, tip: TipView) -> str:
        """When a tipster saw something: wall-clock time and the phrase as written, or the phrase alone."""
        phrase = f"‘{tip.seen_text}’" if tip.seen_text else ""
        if not tip.seen_at:
            return phrase
        try:
            shown = self.local_time(datetime.fromisoformat(tip.seen_at), "%H:%M")
        except ValueError:
            shown = tip.seen_at
        return f"{shown} ({phrase})" if phrase else shown

    def wake(self) -> None:
        """Tell the dispatcher that deliveries were queued."""
        if self.on_queued is not None:
            self.on_queued()

    @property
    def secure_cookies(self) -> bool:
        """Cookies get `Secure` when the public address is https."""
        return self.settings.public_base_url.lower().startswith("https://")

    @property
    def tile_url(self) -> str | None:
        """An optional XYZ tile URL template (`https://…/{z}/{x}/{y}.png`); None draws the offline outline."""
        return self.settings.controlroom.tile_url or None

    @property
    def places(self) -> Geocoder:
        """The geocoder (the postcode table when none was given)."""
        assert self.geocoder is not None
        return self.geocoder


class StreamRecheck:
    """The live streams of this process wait on this between polls; ringing it makes them poll now."""

    def __init__(self) -> None:
        self._waiting: set[asyncio.Event] = set()

    def ring(self) -> None:
        """Wake every waiting stream (call from the event loop)."""
        for event in self._waiting:
            event.set()

    async def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, less when rung."""
        event = asyncio.Event()
        self._waiting.add(event)
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass
        finally:
            self._waiting.discard(event)


@dataclass
class Visitor:
    """A logged-in operator on this request."""

    operator: Operator
    row: OperatorSession
    token: str

    @property
    def language(self) -> str:
        """The page language chosen in this session."""
        return self.row.language if self.row.language in LANGUAGES else DEFAULT_LANGUAGE

    @property
    def role(self) -> OperatorRole:
        """The account's role."""
        return self.operator.role

    @property
    def csrf(self) -> str:
        """The session's CSRF token, put in every form."""
        return self.row.csrf_token

    @property
    def actor(self) -> str:
        """How the audit log names this operator."""
        return f"operator:{self.operator.username}"


def room(request: Request) -> ControlRoom:
    """The control room from the app state (set by `controlroom_router`)."""
    value: ControlRoom = request.scope["controlroom"]
    return value


def translator(catalogue: Catalogue, lang: str) -> Any:
    """`t(key)` for templates: `controlroom.<key>` first, else the catalogue's own key (`action.type.x`)."""

    def t(key: str, **params: Any) -> str:
        for full in (f"controlroom.{key}", key):
            try:
                return catalogue.render(lang, full, **params)
            except MissingText:
                continue
        return key

    return t


def approvals_for(cr: ControlRoom, visitor: Visitor) -> list[Action]:
    """Waiting launches this visitor may approve: not their own, inside their regions."""
    if visitor.role not in (OperatorRole.OPERATOR, OperatorRole.ADMIN) or visitor.operator.id is None:
        return []
    with cr.sessions() as session:
        waiting = [a for a in awaiting_approval(session) if a.approval_requested_by != visitor.actor]
        if not waiting:
            return []
        regions = coverage(session, operator_id=visitor.operator.id)
    return [a for a in waiting if not regions.missing(touched_by_action(cr.book, a))]


def cap_waiting_for(cr: ControlRoom, visitor: Visitor) -> list[Action]:
    """Running actions with a CAP Update or Cancel waiting, for those who may send it."""
    if visitor.role not in (OperatorRole.OPERATOR, OperatorRole.ADMIN):
        return []
    with cr.sessions() as session:
        return actions_with_waiting_changes(session)


def render(
    request: Request,
    name: str,
    *,
    lang: str,
    visitor: Visitor | None = None,
    csrf: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page from a template, with the translator, the visitor and the CSRF token in its context."""
    cr = room(request)
    response = cr.templates.TemplateResponse(
        request,
        name,
        {
            "t": translator(cr.catalogue, lang),
            "n": counter(cr.catalogue, lang),
            "euro": lambda value: euro(value, lang),
            "number": lambda value: number(value, lang),
            "lang": lang,
            "visitor": visitor,
            "csrf": csrf if csrf is not None else (visitor.csrf if visitor else ""),
            # Every page tells an operator who may approve that a launch is waiting for them.
            "approvals": approvals_for(cr, visitor) if visitor is not None else [],
            # And that a CAP Update or Cancel of a running action waits for someone to send it.
            "cap_waiting": cap_waiting_for(cr, visitor) if visitor is not None else [],
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(security_headers(cr))
    return response


def security_headers(cr: ControlRoom) -> dict[str, str]:
    """No inline script, no framing, no referrer; images from here and, when set, the tile server."""
    images = "'self' data:"
    if cr.tile_url:
        from urllib.parse import urlsplit

        parts = urlsplit(cr.tile_url.replace("{", "").replace("}", ""))
        images += f" {parts.scheme}://{parts.netloc}"
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
            "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


def new_token() -> str:
    """A random token for cookies and forms."""
    return secrets.token_urlsafe(32)
