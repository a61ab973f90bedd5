"""Command-line functions for the scheduler: `jobs`, `run-job NAME`, `export-report PERIOD`.

`register(cli)` adds them to `run_bot.py`'s Typer app; each builds the runtime from the settings.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.clock import utcnow
from bot.config import Settings, load_settings
from scheduler.jobs import JobContext, report_for
from scheduler.service import JobBusy, SchedulerService, UnknownJob
from storage import reports
from storage.db import transaction

console = Console()


def _service(settings: Settings) -> SchedulerService:
    """The scheduler on the whole runtime (channels included): for running jobs that send."""
    from bot.runtime import build_runtime, job_context

    return SchedulerService(job_context(build_runtime(settings)))


def _storage_only(settings: Settings) -> SchedulerService:
    """The scheduler on storage alone (no channels, no NLU): for listing jobs and reports."""
    from bot.runtime import make_vault
    from bot.texts import Catalogue
    from storage.db import make_engine, migrate, session_factory
    from storage.geo import PostcodeBook

    migrate(settings.database.url)
    context = JobContext(
        sessions=session_factory(make_engine(settings.database.url)),
        settings=settings,
        clock=utcnow,
        vault=make_vault(settings),
        catalogue=Catalogue.load(),
        book=PostcodeBook.load(settings.postcode_data),
    )
    return SchedulerService(context)


def jobs() -> None:
    """List the scheduler's jobs, their schedule and their next run."""
    settings = load_settings()
    service = _storage_only(settings)
    table = Table("job", "schedule", f"next run ({settings.timezone})", "what it does")
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(settings.timezone)
    for info in service.list_jobs():
        when = info.next_run.astimezone(tz).strftime("%Y-%m-%d %H:%M") if info.next_run else "paused"
        table.add_row(info.name, info.trigger, when, info.description)
    console.print(table)


def run_job(name: Annotated[str, typer.Argument(help="a name from `run_bot.py jobs`")]) -> None:
    """Run one scheduler job now (refused while it runs elsewhere)."""
    service = _service(load_settings())
    try:
        result = asyncio.run(service.run_job(name))
    except UnknownJob:
        console.print(f"[red]no job {name!r}[/red]; known: {', '.join(service.specs)}")
        raise typer.Exit(2) from None
    except JobBusy:
        console.print(f"[yellow]{name} is running right now (here or in another process); try later[/yellow]")
        raise typer.Exit(1) from None
    console.print(f"[green]{name}[/green]: {result}")


def export_report(
    period: Annotated[str, typer.Argument(help="the month, YYYY-MM")],
    output: Annotated[
        Path | None, typer.Option(help="CSV file to write; standard output if left out")
    ] = None,
    compute: Annotated[bool, typer.Option(help="compute the figures now instead of the stored ones")] = False,
) -> None:
    """Export a month's figures per municipality as CSV (the stored report, or computed now)."""
    settings = load_settings()
    try:
        wanted = reports.parse_period(period, settings.timezone)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    service = _storage_only(settings)
    if compute:
        report_for(service.context, period=wanted)
    with transaction(service.context.sessions) as session:
        rows = reports.stored(session, period=wanted.label)
    if not rows:
        console.print(f"[yellow]no report stored for {wanted.label}; use --compute[/yellow]", highlight=False)
        raise typer.Exit(1)
    text = reports.to_csv(rows)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"[green]{len(rows)} municipalities[/green] → {output}")


def register(cli: typer.Typer) -> None:
    """Add `jobs`, `run-job` and `export-report` to the command line."""
    cli.command(name="jobs")(jobs)
    cli.command(name="run-job")(run_job)
    cli.command(name="export-report")(export_report)
