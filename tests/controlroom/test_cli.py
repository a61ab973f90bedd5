"""The account commands (create-operator, end-sessions, reset-password, deactivate-operator,
activate-operator), run through typer's test runner on a temporary database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.controlroom.cli import create_operator_command, register
from storage.db import make_engine, session_factory, transaction
from storage.models import AuditEvent, Operator, OperatorSession
from storage.operators import list_operators, open_session


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()
    cli.command("create-operator")(create_operator_command)
    cli.command("noop")(lambda: None)  # a second command keeps typer from flattening the app
    return cli


@pytest.mark.parametrize(
    ("args", "code", "role", "munis"),
    [
        pytest.param(["olga", "--role", "operator"], 0, "operator", [], id="operator"),
        pytest.param(
            ["cor", "--role", "coordinator", "-m", "0153", "-m", "0164"],
            0,
            "coordinator",
            ["0153", "0164"],
            id="coordinator",
        ),
        pytest.param(
            ["cor", "--role", "coordinator", "-m", "GM0153", "-m", "gm0164", "-m", "153"],
            0,
            "coordinator",
            ["0153", "0164"],
            id="coordinator-cbs-codes",
        ),
        pytest.param(["cor", "--role", "coordinator", "-m", "GM9999"], 1, None, None, id="unknown-code"),
        pytest.param(["cor", "--role", "coordinator", "-m", "0153x"], 1, None, None, id="not-a-code"),
        pytest.param(["cor", "--role", "coordinator"], 1, None, None, id="coordinator-without-municipality"),
        pytest.param(["bad name", "--role", "admin"], 1, None, None, id="space-in-name"),
    ],
)
def test_create_operator(
    app: typer.Typer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    role: str | None,
    munis: list[str] | None,
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPERATOR_PASSWORD", "a long enough password")
    result = CliRunner().invoke(app, ["create-operator", *args])
    assert result.exit_code == code, result.output
    engine = make_engine(url)
    with session_factory(engine)() as session:
        accounts = list_operators(session)
    engine.dispose()
    if role is None:
        assert accounts == []
    else:
        (account,) = accounts
        assert account.role == role and account.municipalities == munis
        assert account.password_hash.startswith("$argon2id$")


@pytest.fixture
def accounts_cli() -> typer.Typer:
    """Every account command, as run_bot.py registers them."""
    cli = typer.Typer()
    register(cli)
    return cli


def _state(url: str, name: str) -> tuple[bool, int, str, list[str]]:
    """An account's active flag, open sessions, hash and audited events."""
    engine = make_engine(url)
    with session_factory(engine)() as session:
        operator = session.exec(select(Operator).where(Operator.username == name)).one()
        sessions = session.exec(
            select(OperatorSession).where(OperatorSession.operator_id == operator.id)
        ).all()
        events = session.exec(
            select(AuditEvent.event).where(AuditEvent.actor == "cli").order_by(col(AuditEvent.id))
        )
        state = (operator.active, len(sessions), operator.password_hash, list(events))
    engine.dispose()
    return state


def _open_two_sessions(url: str, name: str) -> None:
    engine = make_engine(url)
    with transaction(session_factory(engine)) as session:
        operator = session.exec(select(Operator).where(Operator.username == name)).one()
        for _ in range(2):
            open_session(session, operator=operator, now=datetime(2026, 11, 20, 14, 0, tzinfo=UTC))
    engine.dispose()


def test_account_commands(accounts_cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPERATOR_PASSWORD", "a long enough password")
    runner = CliRunner()
    assert runner.invoke(accounts_cli, ["create-operator", "olga"]).exit_code == 0
    _open_two_sessions(url, "olga")
    first_hash = _state(url, "olga")[2]

    done = runner.invoke(accounts_cli, ["end-sessions", "olga"])
    assert done.exit_code == 0 and "2 sessions" in done.output
    assert _state(url, "olga")[1] == 0

    _open_two_sessions(url, "olga")
    monkeypatch.setenv("OPERATOR_PASSWORD", "aaaaaaaaaa")
    weak = runner.invoke(accounts_cli, ["reset-password", "olga"])
    assert weak.exit_code == 1 and "aaaaaaaaaa" not in weak.output
    assert _state(url, "olga")[1:3] == (2, first_hash), "a refused reset changes nothing"
    monkeypatch.setenv("OPERATOR_PASSWORD", "another long passphrase")
    assert runner.invoke(accounts_cli, ["reset-password", "olga"]).exit_code == 0
    active, open_sessions, new_hash, _ = _state(url, "olga")
    assert new_hash != first_hash and open_sessions == 0

    _open_two_sessions(url, "olga")
    assert runner.invoke(accounts_cli, ["deactivate-operator", "olga"]).exit_code == 0
    assert _state(url, "olga")[:2] == (False, 0)
    assert runner.invoke(accounts_cli, ["activate-operator", "olga"]).exit_code == 0
    assert _state(url, "olga")[0] is True
    assert runner.invoke(accounts_cli, ["deactivate-operator", "nobody"]).exit_code == 1
    assert _state(url, "olga")[3] == [
        "controlroom.operator_created",
        "controlroom.operator_sessions_ended",
        "controlroom.operator_password_reset",
        "controlroom.operator_deactivated",
        "controlroom.operator_activated",
    ]


@pytest.mark.parametrize("password", ["aaaaaaaaaa", "aaaaaaaaaaaaaaaa", "password1234", "short"])
def test_create_operator_refuses_a_weak_password(
    accounts_cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPERATOR_PASSWORD", password)
    result = CliRunner().invoke(accounts_cli, ["create-operator", "olga", "--role", "admin"])
    assert result.exit_code == 1
    engine = make_engine(url)
    with session_factory(engine)() as session:
        assert list_operators(session) == []
    engine.dispose()


def test_region_commands(accounts_cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage.regions import approval_rules, coverage, region_names

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("OPERATOR_PASSWORD", "a long enough password")
    runner = CliRunner()
    made = runner.invoke(accounts_cli, ["region", "Twente", "-m", "Enschede", "-m", "GM0164"])
    assert made.exit_code == 0, made.output
    assert runner.invoke(accounts_cli, ["region", "Nergens", "-m", "Atlantis"]).exit_code == 1
    assert runner.invoke(accounts_cli, ["create-operator", "olga", "-r", "Twente"]).exit_code == 0
    assert runner.invoke(accounts_cli, ["create-operator", "bram"]).exit_code == 0
    assert runner.invoke(accounts_cli, ["operator-regions", "bram", "-r", "Heel Nederland"]).exit_code == 0
    assert runner.invoke(accounts_cli, ["operator-regions", "bram", "-r", "Atlantis"]).exit_code == 1
    assert runner.invoke(accounts_cli, ["four-eyes", "Twente", "--type", "robbery"]).exit_code == 0
    assert runner.invoke(accounts_cli, ["four-eyes", "Twente", "--type", "parking"]).exit_code == 1
    engine = make_engine(url)
    with session_factory(engine)() as session:
        olga, bram = (
            session.exec(select(Operator).where(Operator.username == n)).one() for n in ("olga", "bram")
        )
        assert olga.id is not None and bram.id is not None
        assert coverage(session, operator_id=olga.id).codes == {"0153", "0164"}
        assert coverage(session, operator_id=bram.id).everywhere  # the region the migration made
        assert region_names(session)[olga.id] == ["Twente"]
        assert approval_rules(session) == [("Twente", "robbery")]
    engine.dispose()
    assert runner.invoke(accounts_cli, ["delete-region", "Twente"]).exit_code == 0
    assert _state(url, "olga")[3] == [
        "controlroom.region_saved",
        "controlroom.operator_created",
        "controlroom.operator_created",
        "controlroom.operator_regions_set",
        "controlroom.four_eyes_set",
        "controlroom.region_deleted",
    ]
