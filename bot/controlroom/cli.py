"""`run_bot.py create-operator NAME --role operator|coordinator|admin`: an account from the shell."""

from __future__ import annotations

from typing import Annotated

import typer

from storage.models import OperatorRole


def create_operator_command(
    name: Annotated[str, typer.Argument(help="the username")],
    role: Annotated[
        OperatorRole, typer.Option(help="operator, coordinator or admin")
    ] = OperatorRole.OPERATOR,
    municipality: Annotated[
        list[str] | None,
        typer.Option("--municipality", "-m", help="CBS code, 0153 or GM0153 (coordinators; repeatable)"),
    ] = None,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="OPERATOR_PASSWORD",
            help="asked when not given; at least 10 characters",
        ),
    ] = "",
) -> None:
    """Create a control-room account (the password is asked for, twice, unless OPERATOR_PASSWORD is set)."""
    from bot.clock import utcnow
    from bot.config import load_settings
    from storage.db import make_engine, migrate, session_factory, transaction
    from storage.geo import PostcodeBook
    from storage.operators import InvalidOperator, OperatorExists, create_operator
    from storage.participants import audit

    settings = load_settings()
    migrate(settings.database_url)
    try:
        codes = PostcodeBook.load(settings.postcode_data).municipality_codes(municipality or ())
    except LookupError as unknown:
        typer.echo(f"not created: {unknown.args[0]!r} is not a known municipality code or name", err=True)
        raise typer.Exit(code=1) from None
    engine = make_engine(settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
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
        typer.echo(f"not created: {problem}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        engine.dispose()
    typer.echo(f"created {role.value} {name}")
