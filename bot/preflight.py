"""Settings checked before the server starts: one line that says what to fix, instead of a traceback later."""

from __future__ import annotations

import csv
import errno
import ipaddress
import re
import socket
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.config import Settings, load_settings
from storage.crypto import DataKeyError, DataVault, new_data_key
from storage.db import is_sqlite, make_engine
from storage.geo_import import PC4_COLUMNS

# The columns `PostcodeBook.load` reads; the others are informative.
_REQUIRED_PC4_COLUMNS = set(PC4_COLUMNS) - {"plaatsen", "provincie", "alle_gemeentecodes"}


class SettingsProblem(Exception):
    """A setting that stops the start; the message is one line saying what to do."""


def settings_from_environment(**overrides: object) -> Settings:
    """The settings, or a SettingsProblem naming the first variable with a bad value."""
    try:
        return load_settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        if not name:
            raise SettingsProblem(f"{message}; see the configuration table in the README") from None
        raise SettingsProblem(f"{name}: {message}; fix it in the environment or .env") from None


def check_postcode_data(settings: Settings) -> None:
    """POSTCODE_DATA names a readable PC4 table with the columns we read."""
    path = Path(settings.postcode_data)
    hint = "unset it to use the shipped table, or run `run_bot.py import-postcodes`"
    if not path.is_file():
        raise SettingsProblem(f"POSTCODE_DATA: no file at {path}; {hint}")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsProblem(
            f"POSTCODE_DATA: cannot read {path} ({exc.__class__.__name__}); {hint}"
        ) from None
    missing = sorted(_REQUIRED_PC4_COLUMNS - set(header))
    if missing:
        raise SettingsProblem(f"POSTCODE_DATA: {path} lacks the columns {', '.join(missing)}; {hint}")


def check_database(settings: Settings) -> None:
    """DATABASE_URL is SQLite or PostgreSQL, and the database answers."""
    hint = "e.g. sqlite:///./data/burgernet.db or postgresql+psycopg://user:pw@host/db"
    try:
        url = make_url(settings.database.url)
    except ArgumentError:
        raise SettingsProblem(f"DATABASE_URL is not a database URL; {hint}") from None
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise SettingsProblem(f"DATABASE_URL: {url.get_backend_name()} is not supported; {hint}")
    try:
        engine = make_engine(settings.database.url)
    except (OSError, ImportError, ArgumentError) as exc:
        raise SettingsProblem(f"DATABASE_URL: {_reason(exc)}; {hint}") from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        where = url.database if is_sqlite(settings.database.url) else f"{url.host}:{url.port or 5432}"
        raise SettingsProblem(
            f"DATABASE_URL: cannot open the database at {where} ({_reason(exc)}); check the URL and "
            "that the server runs"
        ) from None
    finally:
        engine.dispose()


def check_values(settings: Settings) -> None:
    """TIMEZONE, PUBLIC_BASE_URL and DATA_KEY hold values the system can use."""
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsProblem(
            f"TIMEZONE: {settings.timezone!r} is not a time zone; use e.g. Europe/Amsterdam"
        ) from None
    if not settings.public_base_url.startswith(("http://", "https://")):
        raise SettingsProblem(
            "PUBLIC_BASE_URL must start with http:// or https://, e.g. https://bot.example.nl"
        )
    if settings.data_key:
        try:
            DataVault(settings.data_key)
        except DataKeyError:
            raise SettingsProblem(
                "DATA_KEY must be Fernet keys (comma-separated, newest first); make one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
            ) from None


def check_lookup_key(settings: Settings) -> None:
    """LOOKUP_KEY is set in production (else the look-ups would hang on a data key) and well formed."""
    if settings.lookup_key:
        try:
            DataVault(new_data_key(), lookup_keys=settings.lookup_key)
        except DataKeyError:
            raise SettingsProblem(
                "LOOKUP_KEY must be keys of 32 url-safe base64 bytes (comma-separated, newest first); "
                "make one as DATA_KEY is made"
            ) from None
    elif settings.environment == "production":
        raise SettingsProblem(
            "LOOKUP_KEY is required in production; an installation that ran without it sets it to its "
            "oldest DATA_KEY first (docs/production.md)"
        )


def check_data_key_file(settings: Settings) -> None:
    """Without DATA_KEY (development), DATA_KEY_FILE holds a key or can be made."""
    if settings.data_key:
        return
    path = Path(settings.data_key_file)
    if path.exists():
        try:
            DataVault(path.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError, DataKeyError):
            raise SettingsProblem(
                f"DATA_KEY_FILE: {path} holds no readable Fernet key; restore it from a backup "
                "(what is stored was encrypted with it), or set DATA_KEY"
            ) from None
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsProblem(
            f"DATA_KEY_FILE: cannot make {path.parent} ({exc.strerror}); set another path or DATA_KEY"
        ) from None


def check_urls(settings: Settings) -> None:
    """The optional service URLs are http(s) URLs, and the Telegram webhook secret is one Telegram takes."""
    urls = {
        "RASA_URL": settings.rasa_url,
        "CONTROLROOM_WEBHOOK_URL": settings.controlroom.webhook_url,
        "TELEGRAM_API_BASE_URL": settings.telegram.api_base_url,
        "TWILIO_API_BASE_URL": settings.twilio.api_base_url,
    }
    for name, value in urls.items():
        if value and not value.startswith(("http://", "https://")):
            raise SettingsProblem(f"{name} must start with http:// or https://")
    secret = settings.telegram.webhook_secret
    if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
        raise SettingsProblem("TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z a-z 0-9 _ -")
    for proxy in (p.strip() for p in settings.trusted_proxies.split(",") if p.strip()):
        if proxy == "*":
            continue
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsProblem(
                f"TRUSTED_PROXIES: {proxy[:60]!r} is not an address or network; e.g. 127.0.0.1,10.0.0.0/8"
            ) from None


def check_listen(host: str, port: int) -> None:
    """The port is in range and free on the host, so the server does not fail after printing its URLs."""
    if not 1 <= port <= 65535:
        raise SettingsProblem(f"HTTP_PORT: {port} is not a port (1-65535)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise SettingsProblem(f"HTTP_HOST: {host!r} is not an address of this machine") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise SettingsProblem(
                    f"HTTP_PORT: {port} is in use on {host}; stop what listens there or set another port"
                ) from None
            raise SettingsProblem(f"HTTP_HOST: cannot listen on {host}:{port} ({exc.strerror})") from None


def check_before_serve(settings: Settings, *, host: str, port: int) -> None:
    """Every check `serve` needs before it prints its URLs; raises the first SettingsProblem."""
    check_values(settings)
    check_urls(settings)
    check_lookup_key(settings)
    check_data_key_file(settings)
    check_postcode_data(settings)
    check_database(settings)
    check_listen(host, port)


def check_before_console(settings: Settings) -> None:
    """The checks for a terminal conversation: simulated only, values, key, postcode table, database."""
    check_console_is_simulated(settings)
    check_values(settings)
    check_lookup_key(settings)
    check_data_key_file(settings)
    check_postcode_data(settings)
    check_database(settings)


def check_console_is_simulated(settings: Settings) -> None:
    """The console chats as a simulated person: not while a real provider could have real people here."""
    if settings.real_providers:
        raise SettingsProblem(
            f"the console speaks as a simulated person, and {' and '.join(settings.real_providers)} is "
            "configured: it could speak for a real one; unset the provider settings to chat here"
        )


def _reason(exc: BaseException) -> str:
    """The first line of a driver's error, without SQLAlchemy's background link."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else original.__class__.__name__
