"""The command line as run_bot.py builds it: every documented command is there; key rotation runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from run_bot import cli

COMMANDS = [
    "serve",
    "console",
    "migrate",
    "import-postcodes",
    "create-operator",
    "jobs",
    "run-job",
    "export-report",
    "rotate-data-key",
    "region",
    "operator-regions",
    "four-eyes",
    "test-participant",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_documented_command_exists(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_serve_refuses_workers_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "PostgreSQL" in result.output


def test_serve_refuses_workers_that_would_each_poll_telegram(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@127.0.0.1:1/none")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:polling-token")
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--workers", "2"])
    assert result.exit_code == 2
    assert "TELEGRAM_WEBHOOK_SECRET" in result.output


def test_rotate_data_key_on_an_empty_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DATA_KEY_FILE", str(tmp_path / "data.key"))
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    result = CliRunner().invoke(cli, ["rotate-data-key"])
    assert result.exit_code == 0, result.output
    assert "re-encrypted 0 values in 0 rows" in result.output


def test_test_participant_marks_a_registered_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from bot.preflight import settings_from_environment
    from bot.runtime import make_vault
    from storage.db import make_engine, session_factory, transaction
    from storage.models import Participant, ParticipantStatus

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DATA_KEY_FILE", str(tmp_path / "data.key"))
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    vault = make_vault(settings_from_environment())
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with transaction(session_factory(engine)) as session:
        person = Participant(
            status=ParticipantStatus.ACTIVE,
            phone_hash=vault.lookup_hash("+31612345678"),
            created_at=datetime(2026, 11, 20, tzinfo=UTC),
        )
        session.add(person)
    assert CliRunner().invoke(cli, ["test-participant", "+31687654321"]).exit_code == 1
    marked = CliRunner().invoke(cli, ["test-participant", "+31612345678"])
    assert marked.exit_code == 0, marked.output
    with session_factory(engine)() as session:
        assert [p.test for p in session.query(Participant)] == [True]
    assert CliRunner().invoke(cli, ["test-participant", "+31612345678", "--off"]).exit_code == 0
    with session_factory(engine)() as session:
        assert [p.test for p in session.query(Participant)] == [False]
    engine.dispose()
