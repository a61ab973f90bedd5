"""Control-room accounts from the shell: `run_bot.py create-operator NAME --role …`, `reset-password NAME`,
`end-sessions NAME`, `deactivate-operator NAME` and `activate-operator NAME`; where accounts may launch:
`region NAME -m …`, `delete-region NAME`, `operator-regions NAME --region …` and `four-eyes REGION`.

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
    region: Annotated[
        list[str] | None,
        typer.Option("--region", "-r", help="a region the account may launch in (repeatable; none: nowhere)"),
    ] = None,
    password: PasswordOption = "",
) -> None:
    """Create a control-room account (the password is asked for, twice, unless OPERATOR_PASSWORD is set)."""
    from bot.clock import utcnow
    from bot.config import load_settings
    from storage.geo import PostcodeBook
    from storage.operators import InvalidOperator, OperatorExists, create_operator
    from storage.participants import audit
    from storage.regions import UnknownRegion, set_operator_regions

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
            if region:
                set_operator_regions(session, operator=operator, names=region)
    except (InvalidOperator, OperatorExists) as problem:
        raise _refuse(problem) from None
    except UnknownRegion as unknown:
        raise _refuse(LookupError(f"no region {unknown.args[0]!r}")) from None
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


def region_command(
    name: Annotated[str, typer.Argument(help="the region's name, e.g. 'Politie Oost-Nederland'")],
    municipality: Annotated[
        list[str] | None,
        typer.Option("--municipality", "-m", help="CBS code or name, 0153, GM0153 or Enschede (repeatable)"),
    ] = None,
    everywhere: Annotated[bool, typer.Option(help="the whole country")] = False,
) -> None:
    """Create a region or replace its municipalities (audited)."""
    from bot.clock import utcnow
    from bot.config import load_settings
    from storage.geo import PostcodeBook
    from storage.participants import audit
    from storage.regions import InvalidRegion, save_region

    book = PostcodeBook.load(load_settings().postcode_data)
    try:
        codes = book.municipality_codes(municipality or ())
    except LookupError as unknown:
        raise _refuse(LookupError(f"{unknown.args[0]!r} is not a known municipality code or name")) from None
    try:
        with _store() as session:
            now = utcnow()
            saved = save_region(session, name=name, municipalities=codes, everywhere=everywhere, now=now)
            detail = {"municipalities": saved.municipalities, "everywhere": saved.everywhere}
            subject = f"region:{saved.name}"
            audit(
                session,
                now=now,
                actor="cli",
                event="controlroom.region_saved",
                subject=subject,
                detail=detail,
            )
    except InvalidRegion as problem:
        raise _refuse(problem) from None
    typer.echo(f"region {name}: {'everywhere' if everywhere else ', '.join(codes)}")


def delete_region_command(name: Annotated[str, typer.Argument(help="the region's name")]) -> None:
    """Remove a region; its members lose the right to launch there (audited)."""
    from bot.clock import utcnow
    from storage.participants import audit
    from storage.regions import UnknownRegion, delete_region

    try:
        with _store() as session:
            delete_region(session, name=name)
            audit(
                session,
                now=utcnow(),
                actor="cli",
                event="controlroom.region_deleted",
                subject=f"region:{name}",
            )
    except UnknownRegion:
        raise _refuse(LookupError(f"no region {name!r}")) from None
    typer.echo(f"region {name} deleted")


def operator_regions_command(
    name: Annotated[str, typer.Argument(help="the username")],
    region: Annotated[
        list[str] | None, typer.Option("--region", "-r", help="a region (repeatable; none: launch nowhere)")
    ] = None,
) -> None:
    """Set the regions an account may launch in (replacing the ones it had)."""
    from storage.regions import UnknownRegion, set_operator_regions

    def change(session: Session, operator: Operator) -> dict[str, object]:
        try:
            regions = set_operator_regions(session, operator=operator, names=region or ())
        except UnknownRegion as unknown:
            raise _refuse(LookupError(f"no region {unknown.args[0]!r}")) from None
        return {"regions": [r.name for r in regions]}

    detail = _change(name, "controlroom.operator_regions_set", change)
    typer.echo(f"{name} may launch in: {', '.join(detail['regions']) or 'nowhere'}")  # type: ignore[arg-type]


def four_eyes_command(
    region: Annotated[str, typer.Argument(help="the region's name")],
    action_type: Annotated[
        str, typer.Option("--type", help="an action type (missing_person, robbery, …) or * for every type")
    ] = "*",
    off: Annotated[bool, typer.Option("--off", help="stop requiring a second operator")] = False,
) -> None:
    """Require (or, with --off, stop requiring) a second operator's approval for launches in a region."""
    from bot.clock import utcnow
    from storage.models import ActionType
    from storage.participants import audit
    from storage.regions import ANY_TYPE, UnknownRegion, set_approval_rule

    if action_type != ANY_TYPE and action_type not in {t.value for t in ActionType}:
        raise _refuse(ValueError(f"{action_type!r} is not an action type"))
    try:
        with _store() as session:
            set_approval_rule(session, region_name=region, action_type=action_type, required=not off)
            detail = {"type": action_type, "required": not off}
            subject = f"region:{region}"
            audit(
                session,
                now=utcnow(),
                actor="cli",
                event="controlroom.four_eyes_set",
                subject=subject,
                detail=detail,
            )
    except UnknownRegion:
        raise _refuse(LookupError(f"no region {region!r}")) from None
    typer.echo(f"four eyes for {action_type} in {region}: {'off' if off else 'on'}")


def register(cli: typer.Typer) -> None:
    """Add the account commands to the command line."""
    cli.command(name="create-operator")(create_operator_command)
    cli.command(name="reset-password")(reset_password_command)
    cli.command(name="end-sessions")(end_sessions_command)
    cli.command(name="deactivate-operator")(deactivate_operator_command)
    cli.command(name="activate-operator")(activate_operator_command)
    cli.command(name="region")(region_command)
    cli.command(name="delete-region")(delete_region_command)
    cli.command(name="operator-regions")(operator_regions_command)
    cli.command(name="four-eyes")(four_eyes_command)
