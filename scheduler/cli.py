"""Command-line functions for the scheduler: `jobs`, `run-job NAME`, `export-report PERIOD`.

`register(cli, contexts)` adds them to `run_bot.py`'s Typer app. The job contexts come from the composition
root (`bot.runtime`), handed in by the caller, so the scheduler never imports the runtime that builds it.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from bot.config import Settings, load_settings
from scheduler.jobs import JobContext, report_for
from scheduler.service import JobBusy, SchedulerService, UnknownJob
from storage import reports
from storage.db import transaction

console = Console()

ContextFor = Callable[[Settings], JobContext]


@dataclass(frozen=True)
class JobContexts:
    """How the commands get their job context from the settings."""

    with_channels: ContextFor
    """The whole runtime's (channels included): for running jobs that send."""
    storage_only: ContextFor
    """Storage alone (no channels, no NLU): for listing jobs and reports."""


def jobs(contexts: JobContexts) -> None:
    """List the scheduler's jobs, their schedule and their next run."""
    settings = load_settings()
    service = SchedulerService(contexts.storage_only(settings))
    table = Table("job", "schedule", f"next run ({settings.timezone})", "what it does")
    tz = ZoneInfo(settings.timezone)
    for info in service.list_jobs():
        when = info.next_run.astimezone(tz).strftime("%Y-%m-%d %H:%M") if info.next_run else "paused"
        table.add_row(info.name, info.trigger, when, info.description)
    console.print(table)


def run_job(contexts: JobContexts, name: str) -> None:
    """Run one scheduler job now (refused while it runs elsewhere)."""
    service = SchedulerService(contexts.with_channels(load_settings()))
    try:
        result = asyncio.run(service.run_job(name))
    except UnknownJob:
        console.print(f"[red]no job {name!r}[/red]; known: {', '.join(service.specs)}")
        raise typer.Exit(2) from None
    except JobBusy:
        console.print(f"[yellow]{name} is running right now (here or in another process); try later[/yellow]")
        raise typer.Exit(1) from None
    console.print(f"[green]{name}[/green]: {result}")


def export_report(contexts: JobContexts, period: str, output: Path | None, compute: bool) -> None:
    """Export a month's figures per municipality as CSV (the stored report, or computed now)."""
    settings = load_settings()
    try:
        wanted = reports.parse_period(period, settings.timezone)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    context = contexts.storage_only(settings)
    if compute:
        report_for(context, period=wanted)
    with transaction(context.sessions) as session:
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


def register(cli: typer.Typer, contexts: JobContexts) -> None:
    """Add `jobs`, `run-job` and `export-report` to the command line."""

    @cli.command(name="jobs")
    def jobs_command() -> None:
        """List the scheduler's jobs, their schedule and their next run."""
        jobs(contexts)

    @cli.command(name="run-job")
    def run_job_command(
        name: Annotated[str, typer.Argument(help="a name from `run_bot.py jobs`")],
    ) -> None:
        """Run one scheduler job now (refused while it runs elsewhere)."""
        run_job(contexts, name)

    @cli.command(name="export-report")
    def export_report_command(
        period: Annotated[str, typer.Argument(help="the month, YYYY-MM")],
        output: Annotated[
            Path | None, typer.Option(help="CSV file to write; standard output if left out")
        ] = None,
        compute: Annotated[
            bool, typer.Option(help="compute the figures now instead of the stored ones")
        ] = False,
    ) -> None:
        """Export a month's figures per municipality as CSV (the stored report, or computed now)."""
        export_report(contexts, period, output, compute)
