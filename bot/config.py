"""Settings from environment variables and `.env` (pydantic-settings)."""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.geo import SHIPPED_POSTCODE_DATA


class Environment(StrEnum):
    """Where the system runs; only production switches the production guards on."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"
    """The test suite's child processes: no development admin account, no production secrets."""
    BENCHMARK = "benchmark"
    """The benchmarks' servers, likewise."""


# An API token must be long and varied enough that guessing it online is hopeless.
API_TOKEN_MIN_LENGTH = 32
API_TOKEN_MIN_DISTINCT = 10


class Settings(BaseSettings):
    """Every setting of the system; built once in `run_bot.py` and injected."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Environment = Field(
        default=Environment.DEVELOPMENT, description="development or production (test, benchmark)"
    )
    database_url: str = "sqlite:///./data/burgernet.db"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"

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

    def privacy_url(self, lang: str = "nl") -> str:
        """Where the public privacy statement is read, in Dutch or (`en`) English."""
        return self.public_base_url.rstrip("/") + ("/privacy/en" if lang == "en" else "/privacy")

    @property
    def serves_api_docs(self) -> bool:
        """Whether /docs, /redoc and /openapi.json are served (not in production unless API_DOCS=true)."""
        if self.api_docs is not None:
            return self.api_docs
        return self.environment is not Environment.PRODUCTION

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

    @field_validator("environment", mode="before")
    @classmethod
    def _known_environment(cls, value: object) -> object:
        # `Production` or `prod` once passed as "not production" and switched every guard off.
        if isinstance(value, str):
            name = value.strip().lower()
            if name not in {e.value for e in Environment}:
                raise ValueError(
                    f"{value!r} is not an environment; use one of {', '.join(e.value for e in Environment)}"
                )
            return name
        return value

    @model_validator(mode="after")
    def _refuse_default_secrets_in_production(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
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
