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
    for name in ("POSTCODE_DATA", "DATA_KEY", "ENVIRONMENT", "API_TOKEN", "TIMEZONE", "PUBLIC_BASE_URL"):
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
