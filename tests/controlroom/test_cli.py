"""The create-operator command, run through typer's test runner on a temporary database."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.controlroom.cli import create_operator_command
from storage.db import make_engine, session_factory
from storage.operators import list_operators


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
