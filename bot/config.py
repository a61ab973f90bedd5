"""Settings from environment variables and `.env` (pydantic-settings), read flat and seen in groups.

`Settings` reads one field per environment variable (`TWILIO_AUTH_TOKEN` is `twilio_auth_token`), so the
names in README and docs/production.md, `.env` files and `load_settings(api_token=…)` overrides stay as
they are, and the admin page lists each by its environment name. pydantic-settings fills nested models only
from prefixed, delimited names (`TWILIO__AUTH_TOKEN` with `env_nested_delimiter`), and a `validation_alias`
inside a nested model is not looked up in the environment; hence the flat reading model, and readers see
the groups built from it: `settings.twilio.auth_token`, `settings.http.port`, `settings.dispatch.rates[kind]`,
`settings.whatsapp_templates.for_action[action_type]`. The groups are frozen views built on each read, so a
test that changes a flat field sees the change in its group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.geo import SHIPPED_POSTCODE_DATA
from storage.models import ActionType
from storage.vocabulary import ChannelKind

Environment = Literal["development", "production", "test", "benchmark"]
"""Where the system runs; only production switches the production guards on (test: the test suite's
child processes, benchmark: the benchmarks' servers; neither has the development admin account)."""
ENVIRONMENTS: tuple[str, ...] = get_args(Environment)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Where the data lives."""

    url: str
    lock_wait_s: float | None
    """How long a statement waits for a lock before the request fails (503 at a webhook); None: the
    default (SQLite 30 s, PostgreSQL the server's `lock_timeout`)."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The web server: where it listens, where it is reached, whom it believes, what it serves."""

    host: str
    port: int
    public_base_url: str
    trusted_proxies: str
    serves_api_docs: bool


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """The Telegram bot."""

    bot_token: str | None
    api_base_url: str
    webhook_secret: str | None
    bot_username: str


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """The Twilio account and its senders (SMS, WhatsApp, voice)."""

    account_sid: str | None
    auth_token: str | None
    sms_from: str | None
    whatsapp_from: str | None
    voice_from: str | None
    api_base_url: str | None


@dataclass(frozen=True, slots=True)
class WhatsAppTemplates:
    """The approved WhatsApp templates: one per action type, the fall-back, closings, updates,
    corrections and relays."""

    for_action: Mapping[ActionType, str | None]
    default: str | None
    closing: str | None
    relay: str | None
    reconfirm: str | None
    update: str | None = None
    """An update of a running action (else the alert's template)."""
    correction: str | None = None
    """The correction of an action sent in error (else the closing's template)."""


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """The fan-out of actions: rates per channel (messages per second, 0 = no limit), retries, claims."""

    rate_limits: bool
    rates: Mapping[ChannelKind, float]
    concurrency: int
    batch_size: int
    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float
    claim_timeout_s: float
    poll_interval_s: float


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """The scheduler's jobs: reconfirmation, expiry, sign-up clean-up, retention."""

    enabled: bool
    leader_poll_seconds: float
    reconfirm_after_days: int
    reconfirm_reminder_days: tuple[int, ...]
    expire_after_days: int
    reconfirm_per_minute: int
    reconfirm_batch_expire: int
    quiet_hours_start: time
    quiet_hours_end: time
    signup_timeout_hours: int
    retention_days: int
    audit_retention_days: int
    processed_event_retention_days: int
    delivery_stuck_minutes: int


@dataclass(frozen=True, slots=True)
class ControlRoomSettings:
    """The control room: its webhook, phone, map and operators' Telegram chat."""

    webhook_url: str | None
    webhook_secret: str | None
    phone: str | None
    tile_url: str | None
    tile_attribution: str
    telegram_chat_id: str | None


# An API token must be long and varied enough that guessing it online is hopeless.
API_TOKEN_MIN_LENGTH = 32
API_TOKEN_MIN_DISTINCT = 10


class Settings(BaseSettings):
    """Every setting of the system; built once in `run_bot.py` and injected."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Field(
        default="development", description="development or production (test, benchmark)"
    )
    database_url: str = "sqlite:///./data/burgernet.db"
    database_lock_wait_s: float | None = Field(default=None, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Empty: this machine at HTTP_PORT, so moving the port alone keeps the simulator's links working.
    public_base_url: str = ""

    telegram_bot_token: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_webhook_secret: str | None = None
    telegram_bot_username: str = "BurgernetBot"

    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_voice_from: str | None = None
    twilio_api_base_url: str | None = None

    rasa_url: str | None = None
    rasa_timeout_s: float = 0.5

    controlroom_webhook_url: str | None = None
    controlroom_webhook_secret: str | None = None
    controlroom_phone: str | None = None
    controlroom_tile_url: str | None = None
    """XYZ map tiles for the control room (`https://…/{z}/{x}/{y}.png`); unset draws the offline outline."""
    controlroom_tile_attribution: str = "Kaartgegevens © Kadaster"
    """The credit shown on the map under the tiles (PDOK's BRT-Achtergrondkaart asks for Kadaster's)."""
    geocoder_url: str | None = None
    """PDOK Locatieserver (`https://api.pdok.nl/bzk/locatieserver/search/v3_1`); unset: the postcode table."""
    geocoder_timeout_s: float = 2.0
    controlroom_telegram_chat_id: str | None = None
    """A Telegram chat of operators that gets every tip too (sent through the Telegram channel)."""

    api_token: str | None = None
    data_key: str | None = None
    data_key_file: Path = Path("./data/data.key")
    lookup_key: str | None = None
    """Keys of the look-up hashes (numbers, chat ids, opt-outs), newest first; see docs/production.md."""
    lookup_key_file: Path = Path("./data/lookup.key")

    postcode_data: Path = SHIPPED_POSTCODE_DATA
    """The PC4 table; the copy shipped in `storage/data/` unless a finer or newer one is set."""
    simulator: bool = True
    trusted_proxies: str = "127.0.0.1"
    """Addresses whose X-Forwarded-For/-Proto are believed (comma-separated, `*` for any); none: empty."""
    api_docs: bool | None = None
    """Serve /docs, /redoc and /openapi.json; unset: everywhere but in production."""

    privacy_statement_version: str = "2026-1"
    flow_timeout_minutes: int = 30
    # Codes that verify a typed phone number (storage/verifications.py); limits per hour.
    verification_code_minutes: int = 10
    verification_max_tries: int = 3
    verification_per_number: int = 3
    verification_per_sender: int = 3
    verification_per_hour: int = 200
    # The public sign-up page (/aanmelden): forms per client address per hour, the Telegram link's life.
    signup_per_address: int = 10
    signup_link_minutes: int = 60
    # Replies on paid channels (SMS, WhatsApp): past this many per sender in a window, one notice, then none.
    reply_limit_per_window: int = 30
    reply_window_minutes: int = 10
    timezone: str = "Europe/Amsterdam"

    # Actions and their fan-out (bot/dispatch.py); rates are messages per second, 0 = no limit.
    dispatch_rate_limits: bool = True
    dispatch_rate_telegram: float = 30.0
    dispatch_rate_sms: float = 10.0
    dispatch_rate_whatsapp: float = 80.0
    dispatch_rate_voice: float = 1.0
    dispatch_concurrency: int = 64
    dispatch_batch_size: int = 500
    dispatch_max_attempts: int = 5
    dispatch_backoff_base_s: float = 5.0
    dispatch_backoff_max_s: float = 300.0
    dispatch_claim_timeout_s: float = 120.0
    dispatch_poll_interval_s: float = 0.5
    price_sms_segment_eur: float = 0.075
    price_voice_minute_eur: float = 0.12
    price_whatsapp_template_eur: float = 0.05
    price_whatsapp_session_eur: float = 0.0
    whatsapp_window_hours: int = 24
    whatsapp_template_default: str | None = None
    whatsapp_template_missing_person: str | None = None
    whatsapp_template_robbery: str | None = None
    whatsapp_template_hit_and_run: str | None = None
    whatsapp_template_burglary: str | None = None
    whatsapp_template_stolen_vehicle: str | None = None
    whatsapp_template_other: str | None = None
    whatsapp_template_closing: str | None = None
    # An update of a running action ("Aanvulling") and the correction of one sent in error; unset: the
    # alert's and the closing's template.
    whatsapp_template_update: str | None = None
    whatsapp_template_correction: str | None = None
    # A relay's alert outside the window: the alert's four variables and 5, the tip link.
    whatsapp_template_relay: str | None = None
    action_max_radius_m: float = 50_000.0

    # The scheduler (scheduler/): reconfirmation, expiry, sign-up clean-up, retention, reports.
    scheduler_enabled: bool = True
    scheduler_leader_poll_seconds: float = 5.0
    reconfirm_after_days: int = 365
    reconfirm_reminder_days: list[int] = [7, 14]
    expire_after_days: int = 30
    reconfirm_per_minute: int = 60
    reconfirm_batch_expire: int = 500
    reconfirm_whatsapp_template: str | None = None
    quiet_hours_start: time = time(22, 0)
    quiet_hours_end: time = time(8, 0)
    signup_timeout_hours: int = 24
    retention_days: int = 30
    audit_retention_days: int = 365
    processed_event_retention_days: int = 7
    delivery_stuck_minutes: int = 15
    tip_media_max_bytes: int = Field(default=10_000_000, ge=1)
    """The largest photo or file of a tip that is fetched and kept (bytes)."""
    action_photo_max_bytes: int = Field(default=10_000_000, ge=1)
    """The largest photo an operator may upload with an action (bytes, before it is re-encoded)."""

    def privacy_url(self, lang: str = "nl") -> str:
        """Where the public privacy statement is read, in Dutch or (`en`) English."""
        return self.public_base_url.rstrip("/") + ("/privacy/en" if lang == "en" else "/privacy")

    @property
    def serves_api_docs(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served (not in production unless API_DOCS=true)."""
        if self.api_docs is not None:
            return self.api_docs
        return self.environment != "production"

    @property
    def real_providers(self) -> list[str]:
        """The real providers these settings configure (Telegram, Twilio)."""
        providers = ["Telegram"] if self.telegram_bot_token else []
        if self.twilio_account_sid and self.twilio_auth_token:
            providers.append("Twilio")
        return providers

    @property
    def simulator_runs(self) -> bool:
        """SIMULATOR=true and no real provider, so that every identity the simulator speaks for is simulated.

        A person is known by their number on every channel (a number shared on Telegram is linked to the
        same person on SMS): beside a real provider a simulated sender could speak for a real person."""
        return self.simulator and not self.real_providers

    @property
    def database(self) -> DatabaseSettings:
        """The database group."""
        return DatabaseSettings(url=self.database_url, lock_wait_s=self.database_lock_wait_s)

    @property
    def http(self) -> HttpSettings:
        """The web server group."""
        return HttpSettings(
            host=self.http_host,
            port=self.http_port,
            public_base_url=self.public_base_url,
            trusted_proxies=self.trusted_proxies,
            serves_api_docs=self.serves_api_docs,
        )

    @property
    def telegram(self) -> TelegramSettings:
        """The Telegram group."""
        return TelegramSettings(
            bot_token=self.telegram_bot_token,
            api_base_url=self.telegram_api_base_url,
            webhook_secret=self.telegram_webhook_secret,
            bot_username=self.telegram_bot_username,
        )

    @property
    def twilio(self) -> TwilioSettings:
        """The Twilio group."""
        return TwilioSettings(
            account_sid=self.twilio_account_sid,
            auth_token=self.twilio_auth_token,
            sms_from=self.twilio_sms_from,
            whatsapp_from=self.twilio_whatsapp_from,
            voice_from=self.twilio_voice_from,
            api_base_url=self.twilio_api_base_url,
        )

    @property
    def whatsapp_templates(self) -> WhatsAppTemplates:
        """The WhatsApp templates, those of alerts by action type."""
        by_action = {
            ActionType.MISSING_PERSON: self.whatsapp_template_missing_person,
            ActionType.ROBBERY: self.whatsapp_template_robbery,
            ActionType.HIT_AND_RUN: self.whatsapp_template_hit_and_run,
            ActionType.BURGLARY: self.whatsapp_template_burglary,
            ActionType.STOLEN_VEHICLE: self.whatsapp_template_stolen_vehicle,
            ActionType.OTHER: self.whatsapp_template_other,
        }
        return WhatsAppTemplates(
            for_action=MappingProxyType(by_action),
            default=self.whatsapp_template_default,
            closing=self.whatsapp_template_closing,
            relay=self.whatsapp_template_relay,
            reconfirm=self.reconfirm_whatsapp_template,
            update=self.whatsapp_template_update,
            correction=self.whatsapp_template_correction,
        )

    @property
    def dispatch(self) -> DispatchSettings:
        """The dispatcher group, its rates by channel."""
        rates = {
            ChannelKind.TELEGRAM: self.dispatch_rate_telegram,
            ChannelKind.SMS: self.dispatch_rate_sms,
            ChannelKind.WHATSAPP: self.dispatch_rate_whatsapp,
            ChannelKind.VOICE: self.dispatch_rate_voice,
        }
        return DispatchSettings(
            rate_limits=self.dispatch_rate_limits,
            rates=MappingProxyType(rates),
            concurrency=self.dispatch_concurrency,
            batch_size=self.dispatch_batch_size,
            max_attempts=self.dispatch_max_attempts,
            backoff_base_s=self.dispatch_backoff_base_s,
            backoff_max_s=self.dispatch_backoff_max_s,
            claim_timeout_s=self.dispatch_claim_timeout_s,
            poll_interval_s=self.dispatch_poll_interval_s,
        )

    @property
    def scheduler(self) -> SchedulerSettings:
        """The scheduler group."""
        return SchedulerSettings(
            enabled=self.scheduler_enabled,
            leader_poll_seconds=self.scheduler_leader_poll_seconds,
            reconfirm_after_days=self.reconfirm_after_days,
            reconfirm_reminder_days=tuple(self.reconfirm_reminder_days),
            expire_after_days=self.expire_after_days,
            reconfirm_per_minute=self.reconfirm_per_minute,
            reconfirm_batch_expire=self.reconfirm_batch_expire,
            quiet_hours_start=self.quiet_hours_start,
            quiet_hours_end=self.quiet_hours_end,
            signup_timeout_hours=self.signup_timeout_hours,
            retention_days=self.retention_days,
            audit_retention_days=self.audit_retention_days,
            processed_event_retention_days=self.processed_event_retention_days,
            delivery_stuck_minutes=self.delivery_stuck_minutes,
        )

    @property
    def controlroom(self) -> ControlRoomSettings:
        """The control room group."""
        return ControlRoomSettings(
            webhook_url=self.controlroom_webhook_url,
            webhook_secret=self.controlroom_webhook_secret,
            phone=self.controlroom_phone,
            tile_url=self.controlroom_tile_url,
            tile_attribution=self.controlroom_tile_attribution,
            telegram_chat_id=self.controlroom_telegram_chat_id,
        )

    @field_validator("environment", mode="before")
    @classmethod
    def _known_environment(cls, value: object) -> object:
        # `Production` or `prod` once passed as "not production" and switched every guard off.
        if isinstance(value, str):
            name = value.strip().lower()
            if name not in ENVIRONMENTS:
                raise ValueError(f"{value!r} is not an environment; use one of {', '.join(ENVIRONMENTS)}")
            return name
        return value

    @model_validator(mode="after")
    def _public_base_url_from_the_port(self) -> Settings:
        if not self.public_base_url:
            host = "127.0.0.1" if self.http_host in ("", "0.0.0.0", "::") else self.http_host
            if ":" in host:
                host = f"[{host}]"
            self.public_base_url = f"http://{host}:{self.http_port}"
        return self

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            missing = [n for n in ("data_key", "api_token") if not getattr(self, n)]
            if missing:
                raise ValueError(f"production needs {', '.join(n.upper() for n in missing)}")
            if self.simulator:
                raise ValueError("production needs SIMULATOR=false")
            _check_production_values(self)
        return self


def _check_production_values(settings: Settings) -> None:
    """The weak values production refuses; each raises ValueError with one line saying what to do."""
    token = settings.api_token or ""
    repeated = token in (token + token)[1:-1]  # a shorter block over and over: `abcabcabc…`
    if len(token) < API_TOKEN_MIN_LENGTH or len(set(token)) < API_TOKEN_MIN_DISTINCT or repeated:
        raise ValueError(
            f"production needs an API_TOKEN of at least {API_TOKEN_MIN_LENGTH} varied characters; make one "
            'with `python -c "import secrets; print(secrets.token_urlsafe(32))"`'
        )
    if not settings.public_base_url.startswith("https://"):
        raise ValueError(
            "production needs an https:// PUBLIC_BASE_URL (over http:// the login cookie loses its "
            "Secure flag)"
        )
    if settings.controlroom_webhook_url and not settings.controlroom_webhook_secret:
        raise ValueError(
            "production needs CONTROLROOM_WEBHOOK_SECRET when CONTROLROOM_WEBHOOK_URL is set (the "
            "control room cannot tell our tips from forged ones)"
        )


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
