"""Control-room accounts from the shell: `run_bot.py create-operator NAME --role …`, `reset-password NAME`,
`end-sessions NAME`, `deactivate-operator NAME` and `activate-operator NAME`.

Each change is audited with the actor `cli`. Ending sessions deletes them in the store, so the running
server refuses them at the next request, and its live streams end at their next poll.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlmodel import Session

from storage.models import Operator, OperatorRole

PasswordOption = Annotated[
    str,
    typer.Option(
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="OPERATOR_PASSWORD",
        help="asked when not given; at least 12 characters, not a common password",
    ),
]


@contextmanager
def _store() -> Iterator[Session]:
    """One transaction on the configured database (migrated first)."""
    from bot.config import load_settings
    from storage.db import make_engine, migrate, session_factory, transaction

    settings = load_settings()
    migrate(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        with transaction(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _refuse(problem: Exception) -> typer.Exit:
    typer.echo(f"not done: {problem}", err=True)
    return typer.Exit(code=1)


def create_operator_command(
    name: Annotated[str, typer.Argument(help="the username")],
    role: Annotated[
        OperatorRole, typer.Option(help="operator, coordinator or admin")
    ] = OperatorRole.OPERATOR,
    municipality: Annotated[
        list[str] | None,
        typer.Option("--municipality", "-m", help="CBS code, 0153 or GM0153 (coordinators; repeatable)"),
    ] = None,
    password: PasswordOption = "",
) -> None:
    """Create a control-room account (the password is asked for, twice, unless OPERATOR_PASSWORD is set)."""
    from bot.clock import utcnow
    from bot.config import load_settings
    from storage.geo import PostcodeBook
    from storage.operators import InvalidOperator, OperatorExists, create_operator
    from storage.participants import audit

    try:
        with _store() as session:
            book = PostcodeBook.load(load_settings().postcode_data)
            try:
                codes = book.municipality_codes(municipality or ())
            except LookupError as unknown:
                name = unknown.args[0]
                typer.echo(f"not created: {name!r} is not a known municipality code or name", err=True)
                raise typer.Exit(code=1) from None
            now = utcnow()
            operator = create_operator(
                session,
                username=name,
                password=password,
                role=role,
                municipalities=codes,
                now=now,
            )
            audit(
                session,
                now=now,
                actor="cli",
                event="controlroom.operator_created",
                subject=f"operator:{operator.username}",
                detail={"role": role.value},
            )
    except (InvalidOperator, OperatorExists) as problem:
        raise _refuse(problem) from None
    typer.echo(f"created {role.value} {name}")


Change = Callable[[Session, Operator], dict[str, object]]


def _change(name: str, event: str, change: Change) -> dict[str, object]:
    """Apply a change to the named account and audit it; exit 1 when there is no such account."""
    from bot.clock import utcnow
    from storage.operators import InvalidOperator, UnknownOperator, find_operator
    from storage.participants import audit

    try:
        with _store() as session:
            operator = find_operator(session, username=name)
            detail = change(session, operator)
            audit(session, now=utcnow(), actor="cli", event=event, subject=f"operator:{operator.username}",
                  detail=detail)  # fmt: skip
    except UnknownOperator:
        raise _refuse(LookupError(f"no account {name!r}")) from None
    except InvalidOperator as problem:
        raise _refuse(problem) from None
    return detail


def reset_password_command(
    name: Annotated[str, typer.Argument(help="the username")],
    password: PasswordOption = "",
) -> None:
    """Give an account a new password (asked for twice unless OPERATOR_PASSWORD is set); its sessions end."""
    from storage.operators import check_new_password, default_hasher, end_sessions, set_password_hash

    def change(session: Session, operator: Operator) -> dict[str, object]:
        assert operator.id is not None
        check_new_password(password, username=operator.username)
        set_password_hash(session, operator=operator, password_hash=default_hasher().hash(password))
        return {"sessions": end_sessions(session, operator_id=operator.id)}

    detail = _change(name, "controlroom.operator_password_reset", change)
    typer.echo(f"new password for {name}; {detail['sessions']} sessions ended")


def end_sessions_command(name: Annotated[str, typer.Argument(help="the username")]) -> None:
    """Log an account out everywhere."""
    from storage.operators import end_sessions

    def change(session: Session, operator: Operator) -> dict[str, object]:
        assert operator.id is not None
        return {"sessions": end_sessions(session, operator_id=operator.id)}

    detail = _change(name, "controlroom.operator_sessions_ended", change)
    typer.echo(f"{detail['sessions']} sessions of {name} ended")


def deactivate_operator_command(name: Annotated[str, typer.Argument(help="the username")]) -> None:
    """Deactivate an account: it can no longer log in, and its sessions end at once."""
    from storage.operators import set_active

    def change(session: Session, operator: Operator) -> dict[str, object]:
        return {"sessions": set_active(session, operator=operator, active=False)}

    detail = _change(name, "controlroom.operator_deactivated", change)
    typer.echo(f"{name} deactivated; {detail['sessions']} sessions ended")


def activate_operator_command(name: Annotated[str, typer.Argument(help="the username")]) -> None:
    """Let a deactivated account log in again."""
    from storage.operators import set_active

    def change(session: Session, operator: Operator) -> dict[str, object]:
        set_active(session, operator=operator, active=True)
        return {}

    _change(name, "controlroom.operator_activated", change)
    typer.echo(f"{name} is active again")


def register(cli: typer.Typer) -> None:
    """Add the account commands to the command line."""
    cli.command(name="create-operator")(create_operator_command)
    cli.command(name="reset-password")(reset_password_command)
    cli.command(name="end-sessions")(end_sessions_command)
    cli.command(name="deactivate-operator")(deactivate_operator_command)
    cli.command(name="activate-operator")(activate_operator_command)
