"""`serve` with a bad setting stops before it prints its URLs, with one line on stderr and no traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from run_bot import cli
from storage.crypto import new_data_key


@pytest.fixture
def free_port() -> Iterator[int]:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_port: int) -> pytest.MonkeyPatch:
    """Good settings on the test's own folder, which a case then spoils."""
    monkeypatch.chdir(tmp_path)
    for name in (
        *("POSTCODE_DATA", "DATA_KEY", "ENVIRONMENT", "API_TOKEN", "TIMEZONE", "PUBLIC_BASE_URL"),
        *("SIMULATOR", "CONTROLROOM_WEBHOOK_URL", "CONTROLROOM_WEBHOOK_SECRET", "API_DOCS"),
        *("TRUSTED_PROXIES", "TELEGRAM_BOT_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'pre.db'}")
    monkeypatch.setenv("DATA_KEY_FILE", str(tmp_path / "data" / "data.key"))
    monkeypatch.setenv("HTTP_PORT", str(free_port))
    return monkeypatch


def _bad_pc4(tmp_path: Path) -> str:
    path = tmp_path / "pc4.csv"
    path.write_text("postcode,latitude\n7511,52.2\n", encoding="utf-8")
    return str(path)


def _not_a_key(tmp_path: Path) -> str:
    path = tmp_path / "data.key"
    path.write_text("not a key\n", encoding="utf-8")
    return str(path)


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "plain").write_text("", encoding="utf-8")
    return str(tmp_path / "plain" / "data.key")


def _fernet_key(_tmp_path: Path) -> str:
    from storage.crypto import new_data_key

    return new_data_key()


STRONG_TOKEN = "kX3-q9Zt_Lm2Vb7Rc4Hn8Wd1Jf6Gp0Ys5"
# Production with every secret it needs, so that each case below spoils exactly one thing.
PRODUCTION: dict[str, object] = {
    "ENVIRONMENT": "production",
    "DATA_KEY": _fernet_key,
    "API_TOKEN": STRONG_TOKEN,
    "SIMULATOR": "false",
    "PUBLIC_BASE_URL": "https://bot.example.nl",
}

CASES = [
    pytest.param({"POSTCODE_DATA": "missing/nl_pc4.csv"}, "POSTCODE_DATA", id="postcode-file-missing"),
    pytest.param({"POSTCODE_DATA": _bad_pc4}, "POSTCODE_DATA", id="postcode-file-wrong-columns"),
    pytest.param({"DATABASE_URL": "burgernet.db"}, "DATABASE_URL", id="database-url-not-a-url"),
    pytest.param({"DATABASE_URL": "mysql://db/burgernet"}, "DATABASE_URL", id="database-unsupported"),
    pytest.param(
        {"DATABASE_URL": "postgresql+psycopg://bot:hunter2@127.0.0.1:1/burgernet"},
        "DATABASE_URL",
        id="database-unreachable",
    ),
    pytest.param({"HTTP_PORT": "eighty"}, "HTTP_PORT", id="port-not-a-number"),
    pytest.param({"HTTP_PORT": "70000"}, "HTTP_PORT", id="port-out-of-range"),
    pytest.param({"ENVIRONMENT": "production"}, "DATA_KEY", id="production-without-secrets"),
    # Another spelling of production once switched every guard off: now it is production, or refused.
    pytest.param({"ENVIRONMENT": "Production"}, "DATA_KEY", id="production-capitalised-is-production"),
    pytest.param({"ENVIRONMENT": " PRODUCTION "}, "DATA_KEY", id="production-shouted-is-production"),
    pytest.param({"ENVIRONMENT": "prod"}, "ENVIRONMENT", id="environment-prod-refused"),
    pytest.param({"ENVIRONMENT": "staging"}, "ENVIRONMENT", id="environment-unknown-refused"),
    pytest.param({"ENVIRONMENT": ""}, "ENVIRONMENT", id="environment-empty-refused"),
    pytest.param(PRODUCTION | {"SIMULATOR": "true"}, "SIMULATOR", id="production-with-simulator"),
    pytest.param(PRODUCTION | {"API_TOKEN": "a"}, "API_TOKEN", id="production-token-one-letter"),
    pytest.param(PRODUCTION | {"API_TOKEN": "a" * 64}, "API_TOKEN", id="production-token-one-letter-64"),
    pytest.param(PRODUCTION | {"API_TOKEN": "0123456789" * 2}, "API_TOKEN", id="production-token-short"),
    pytest.param(
        PRODUCTION | {"API_TOKEN": "abab" * 10 + "123"}, "API_TOKEN", id="production-token-low-variety"
    ),
    pytest.param(
        PRODUCTION | {"API_TOKEN": "0123456789abcdef" * 3}, "API_TOKEN", id="production-token-repeated-block"
    ),
    pytest.param(
        PRODUCTION | {"PUBLIC_BASE_URL": "http://bot.example.nl"}, "PUBLIC_BASE_URL", id="production-http"
    ),
    pytest.param({"TRUSTED_PROXIES": "nginx"}, "TRUSTED_PROXIES", id="trusted-proxy-not-an-address"),
    pytest.param(
        PRODUCTION | {"CONTROLROOM_WEBHOOK_URL": "https://meldkamer.example.nl/tips"},
        "CONTROLROOM_WEBHOOK_SECRET",
        id="production-webhook-without-secret",
    ),
    pytest.param({"TIMEZONE": "Europe/Enschede"}, "TIMEZONE", id="timezone-unknown"),
    pytest.param({"DATA_KEY": "not-a-fernet-key"}, "DATA_KEY", id="data-key-malformed"),
    pytest.param({"PUBLIC_BASE_URL": "bot.example.nl"}, "PUBLIC_BASE_URL", id="base-url-without-scheme"),
    pytest.param({"FLOW_TIMEOUT_MINUTES": "half an hour"}, "FLOW_TIMEOUT_MINUTES", id="any-bad-number"),
    pytest.param({"DATA_KEY_FILE": _not_a_key}, "DATA_KEY_FILE", id="data-key-file-garbage"),
    pytest.param({"DATA_KEY_FILE": _under_a_file}, "DATA_KEY_FILE", id="data-key-file-unmakeable"),
    pytest.param({"RASA_URL": "localhost:5005"}, "RASA_URL", id="rasa-url-without-scheme"),
    pytest.param({"TELEGRAM_WEBHOOK_SECRET": "geheim!"}, "TELEGRAM_WEBHOOK_SECRET", id="webhook-secret"),
    pytest.param(
        {
            "ENVIRONMENT": "production",
            "DATA_KEY": new_data_key(),
            "API_TOKEN": "Zr8v0QmX3cT7yLp2Hn6sWb9dKf4gJe1a",
            "SIMULATOR": "false",
            "PUBLIC_BASE_URL": "https://bot.example.nl",
        },
        "LOOKUP_KEY",
        id="production-without-lookup-key",
    ),
    pytest.param({"LOOKUP_KEY": "not-a-key"}, "LOOKUP_KEY", id="lookup-key-malformed"),
]


@pytest.mark.parametrize(("settings", "named"), CASES)
def test_serve_stops_before_its_urls_with_one_line(
    env: pytest.MonkeyPatch, tmp_path: Path, settings: dict[str, object], named: str
) -> None:
    for name, value in settings.items():
        env.setenv(name, value(tmp_path) if callable(value) else str(value))
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stdout == ""  # no URLs, no admin password
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr
    assert "hunter2" not in result.stderr


def test_serve_stops_when_the_port_is_taken(env: pytest.MonkeyPatch, free_port: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"HTTP_PORT: {free_port} is in use" in result.stderr


def test_console_stops_on_a_missing_postcode_file(env: pytest.MonkeyPatch) -> None:
    env.setenv("POSTCODE_DATA", "nowhere.csv")
    result = CliRunner().invoke(cli, ["console"], input="")
    assert result.exit_code == 2
    assert result.stderr.startswith("cannot start: POSTCODE_DATA: no file at nowhere.csv")


def test_the_shipped_postcode_table_is_the_default(env: pytest.MonkeyPatch) -> None:
    from bot.config import load_settings

    path = load_settings().postcode_data
    assert path.is_file()
    assert path.parent.name == "data" and path.parent.parent.name == "storage"
    assert "shared" not in path.parts


@pytest.mark.parametrize("url", ["burgernet.db", "postgresql+psycopg://bot:hunter2@127.0.0.1:1/burgernet"])
def test_migrate_stops_on_a_bad_database_url_with_one_line(env: pytest.MonkeyPatch, url: str) -> None:
    # `make run` migrates before it serves: the first thing a newcomer's bad URL meets.
    env.setenv("DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 2
    assert result.stderr.startswith("cannot start: DATABASE_URL")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.stderr


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("development", "development"),
        ("Development", "development"),
        ("PRODUCTION", "production"),
        (" production\n", "production"),
        ("test", "test"),
        ("Benchmark", "benchmark"),
    ],
)
def test_known_environments_are_read_in_any_case(env: pytest.MonkeyPatch, given: str, meant: str) -> None:
    from bot.config import load_settings

    for name, value in PRODUCTION.items():
        if name != "ENVIRONMENT":
            env.setenv(name, value(Path()) if callable(value) else str(value))
    env.setenv("ENVIRONMENT", given)
    settings = load_settings()
    assert settings.environment == meant
    assert settings.serves_api_docs is (meant != "production")


def test_production_with_strong_values_starts_its_checks(env: pytest.MonkeyPatch) -> None:
    """The production values above pass the settings: the failing cases fail for their one spoilt value."""
    from bot.preflight import settings_from_environment

    for name, value in PRODUCTION.items():
        env.setenv(name, value(Path()) if callable(value) else str(value))
    env.setenv("CONTROLROOM_WEBHOOK_URL", "https://meldkamer.example.nl/tips")
    env.setenv("CONTROLROOM_WEBHOOK_SECRET", "s" + STRONG_TOKEN)
    assert settings_from_environment().environment == "production"
