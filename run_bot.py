"""burgernet-bot: the command line. `serve` (default) runs the whole system on one ASGI server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress

from bot.config import Settings

if TYPE_CHECKING:
    from scheduler.jobs import JobContext

T = TypeVar("T")

cli = typer.Typer(help="Burgernet citizen alert bots and control room.", no_args_is_help=False)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    """The settings; a bad value ends the command with one line on stderr instead of a traceback."""
    from bot.preflight import settings_from_environment

    return _or_exit(settings_from_environment)


def _or_exit(check: Callable[[], T]) -> T:
    """Run a settings check; its SettingsProblem becomes one red line on stderr and exit code 2."""
    from bot.preflight import SettingsProblem

    try:
        return check()
    except SettingsProblem as problem:
        errors.print(f"[red]cannot start[/red]: {problem}", highlight=False)
        raise typer.Exit(code=2) from None


@cli.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Serve everything when no command is given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic lists every plugin it loads at INFO: noise before the lines a newcomer needs.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if ctx.invoked_subcommand is None:
        serve()


@cli.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from bot.preflight import check_database
    from storage.db import migrate as run_migrations

    settings = _settings()
    _or_exit(lambda: check_database(settings))
    run_migrations(settings.database.url)
    console.print(f"[green]database up to date[/green] ({settings.database.url.split('@')[-1]})")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="overrides HTTP_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="overrides HTTP_PORT")] = None,
    workers: Annotated[int, typer.Option(min=1, max=32, help="server processes (PostgreSQL only)")] = 1,
) -> None:
    """Run the bots, webhooks, simulator, REST API, control room, outbox worker and scheduler."""
    import uvicorn

    from bot.preflight import check_before_serve
    from storage.db import is_sqlite
    from storage.db import migrate as run_migrations

    settings = _settings()
    if workers > 1 and is_sqlite(settings.database.url):
        console.print("[red]--workers needs PostgreSQL[/red]: on SQLite one process owns the outbox")
        raise typer.Exit(code=2)
    if workers > 1 and settings.telegram.bot_token and not settings.telegram.webhook_secret:
        # Telegram hands updates to one poller: a second one gets 409 Conflict and updates go missing.
        console.print(
            "[red]--workers needs TELEGRAM_WEBHOOK_SECRET[/red]: Telegram allows one polling process; "
            "set a webhook secret so that every worker takes updates by webhook"
        )
        raise typer.Exit(code=2)
    bind_host, bind_port = host or settings.http.host, port or settings.http.port
    _or_exit(lambda: check_before_serve(settings, host=bind_host, port=bind_port))
    run_migrations(settings.database.url)
    base = f"http://{bind_host}:{bind_port}"
    console.print(f"[bold]burgernet-bot[/bold] on {base}")
    _warn_about_the_simulator(settings)
    if settings.simulator_runs:
        console.print(f"  simulator:    {base}/simulator")
    console.print(f"  control room: {base}/controlroom{_development_login(settings)}")
    console.print(f"  health:       {base}/healthz")
    if settings.serves_api_docs:
        console.print(f"  API docs:     {base}/docs")
    # Each worker process builds its own runtime; the outbox and the scheduler's leader lock are shared
    # through the database.
    uvicorn.run(
        "bot.asgi:app_from_environment",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        log_level="info",
        # The app believes X-Forwarded-* from TRUSTED_PROXIES only (bot/http_guards.py); uvicorn's own
        # handling would believe 127.0.0.1 first and hand the app a client address already rewritten.
        proxy_headers=False,
    )


def _warn_about_the_simulator(settings: Settings) -> None:
    """A line on stderr while the simulator is on: anyone who reaches the port can chat through it."""
    if settings.simulator_runs:
        errors.print(
            "[yellow]warning[/yellow]: the simulator is on: whoever reaches this port can chat as a "
            "simulated person and read the simulated conversations; SIMULATOR=false switches it off",
            highlight=False,
        )
    elif settings.simulator:
        errors.print(
            f"[yellow]warning[/yellow]: the simulator is off because {' and '.join(settings.real_providers)}"
            " is configured: it would speak for real people; SIMULATOR=false silences this line",
            highlight=False,
        )


def _development_login(settings: Settings) -> str:
    """In development, an admin account on first start so that a newcomer can log in at once."""
    if settings.environment != "development":
        return ""
    from bot.controlroom.dev_account import ensure_development_admin

    username, password = ensure_development_admin(settings)
    if password is None:
        return ""
    return f"   (log in as {username} / {password}; development only)"


@cli.command(name="console")
def chat_console(
    channel: Annotated[str, typer.Option(help="sms, whatsapp or telegram")] = "sms",
    sender: Annotated[
        str | None, typer.Option(help="phone number or chat id; the simulator page's person by default")
    ] = None,
) -> None:
    """Chat with the bot in the terminal, as a person on a channel."""
    from bot.channels.simulator import DEFAULT_SENDERS
    from bot.clock import utcnow
    from bot.messages import IncomingMessage, answered_in_band
    from bot.preflight import check_before_console
    from bot.runtime import build_runtime
    from storage.vocabulary import ChannelKind

    settings = _settings()
    _or_exit(lambda: check_before_console(settings))
    runtime = build_runtime(settings)
    kind = ChannelKind(channel)
    person = sender or DEFAULT_SENDERS.get(kind, DEFAULT_SENDERS[ChannelKind.SMS])
    console.print(f"[dim]chatting as {person} on {kind}; Ctrl-D to leave[/dim]")

    async def turn(text: str) -> None:
        message = IncomingMessage(channel=kind, sender=person, text=text, received_at=utcnow())
        with answered_in_band("console"):
            replies = await runtime.inbox.receive(message)
        for reply in replies:
            console.print(f"[cyan]bot>[/cyan] {reply.text}")
            if reply.buttons:
                console.print(f"[dim]     [{' | '.join(reply.buttons)}][/dim]")

    while True:
        try:
            text = console.input("[green]jij>[/green] ")
        except (EOFError, KeyboardInterrupt):
            break
        asyncio.run(turn(text))
    runtime.engine.dispose()


@cli.command(name="import-postcodes")
def import_postcodes(
    source: Annotated[
        Path | None, typer.Argument(help="GeoNames NL.zip or NL.txt; downloaded if left out")
    ] = None,
    output: Annotated[Path, typer.Option(help="where to write the PC4 table")] = Path("data/nl_pc4.csv"),
) -> None:
    """Load the official GeoNames postal-code file into the PC4 table (then set POSTCODE_DATA)."""
    from storage.geo import PostcodeBook
    from storage.geo_import import (
        GEONAMES_NL_URL,
        geonames_to_pc4,
        read_geonames_lines,
        read_municipalities,
        write_pc4,
    )

    if source is None:
        import httpx

        source = output.parent / "NL.zip"
        source.parent.mkdir(parents=True, exist_ok=True)
        with (
            httpx.stream("GET", GEONAMES_NL_URL, follow_redirects=True, timeout=60) as response,
            Progress() as bar,
        ):
            response.raise_for_status()
            task = bar.add_task(
                "downloading NL.zip", total=int(response.headers.get("content-length", 0)) or None
            )
            with source.open("wb") as handle:
                for chunk in response.iter_bytes():
                    handle.write(chunk)
                    bar.advance(task, len(chunk))
    lines = read_geonames_lines(source)
    with Progress() as bar:
        task = bar.add_task("reading postcodes", total=len(lines))
        rows = geonames_to_pc4(
            lines, progress=lambda n: bar.advance(task, n), municipalities=read_municipalities()
        )
    write_pc4(rows, output)
    book = PostcodeBook.load(output)
    console.print(
        f"[green]{len(book)} postcodes in {len(book.municipalities())} municipalities[/green] → {output}\n"
        f"set POSTCODE_DATA={output}"
    )


@cli.command(name="rotate-data-key")
def rotate_data_key_command() -> None:
    """Re-encrypt every stored phone number, name and chat id with DATA_KEY's newest key."""
    from bot.runtime import make_vault
    from storage.db import make_engine, session_factory
    from storage.keys import rotate_data_key

    settings = _settings()
    engine = make_engine(settings.database.url)
    try:
        report = rotate_data_key(session_factory(engine), vault=make_vault(settings))
    finally:
        engine.dispose()
    console.print(
        f"[green]re-encrypted {report.values} values in {report.rows} rows[/green]"
        f" ({report.skipped} changed meanwhile and were already current)"
    )


@cli.command(name="rehash-lookups")
def rehash_lookups_command() -> None:
    """Recompute every stored look-up hash (numbers, chat ids, opt-outs) with LOOKUP_KEY's newest key."""
    from bot.runtime import make_vault
    from storage.db import make_engine, session_factory
    from storage.keys import rehash_lookups

    settings = _settings()
    engine = make_engine(settings.database.url)
    try:
        report = rehash_lookups(session_factory(engine), vault=make_vault(settings))
    finally:
        engine.dispose()
    console.print(
        f"[green]re-hashed {report.identities} identities, {report.participants} participants, "
        f"{report.opt_outs} opt-outs and {report.tips} tips[/green]; {report.hash_only} opted-out or erased "
        "identities are kept as a hash alone and stay under the key they were made with"
    )


@cli.command(name="test-participant")
def test_participant_command(
    phone: Annotated[str, typer.Argument(help="the participant's number, +31612345678")],
    off: Annotated[bool, typer.Option("--off", help="a normal participant again")] = False,
) -> None:
    """Mark a registered participant as a test participant: every exercise in their area reaches them."""
    from bot.clock import utcnow
    from bot.runtime import make_vault
    from storage.db import make_engine, migrate, session_factory, transaction
    from storage.participants import audit, find_participant_by_phone

    settings = _settings()
    migrate(settings.database.url)
    engine = make_engine(settings.database.url)
    try:
        with transaction(session_factory(engine)) as session:
            participant = find_participant_by_phone(session, vault=make_vault(settings), phone=phone.strip())
            if participant is None:
                console.print("[red]no registered participant with that number[/red]")
                raise typer.Exit(code=1)
            participant.test = not off
            session.add(participant)
            audit(
                session,
                now=utcnow(),
                actor="cli",
                event="participant_test_set",
                subject=f"participant:{participant.id}",
                detail={"test": not off},
            )
    finally:
        engine.dispose()
    console.print(f"participant {participant.id} is {'no longer ' if off else ''}a test participant")


def _job_context_with_channels(settings: Settings) -> JobContext:
    from bot.runtime import runtime_job_context

    return runtime_job_context(settings)


def _job_context_on_storage(settings: Settings) -> JobContext:
    from bot.runtime import storage_job_context

    return storage_job_context(settings)


def _register_commands() -> None:
    from bot.controlroom.cli import register as register_accounts
    from scheduler.cli import JobContexts, register

    register_accounts(cli)
    # The scheduler's commands get their job contexts from the composition root, handed in from here.
    register(cli, JobContexts(with_channels=_job_context_with_channels, storage_only=_job_context_on_storage))


_register_commands()

if __name__ == "__main__":
    cli()
