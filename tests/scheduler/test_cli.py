"""The command line: `jobs`, `run-job NAME`, `export-report PERIOD` on a fresh SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bot.runtime import runtime_job_context, storage_job_context
from scheduler.cli import JobContexts, register


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    """A Typer app with the scheduler's commands, on its own database (settings from the environment)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DATA_KEY_FILE", str(tmp_path / "data.key"))
    cli = typer.Typer()

    @cli.callback()
    def main() -> None:
        """Test app."""

    register(cli, JobContexts(with_channels=runtime_job_context, storage_only=storage_job_context))
    return cli


def test_jobs_lists_every_job(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["jobs"])
    assert result.exit_code == 0, result.output
    for name in ("reconfirm", "clean-signups", "close-actions", "purge-retention", "monthly-report"):
        assert name in result.output


@pytest.mark.parametrize(
    ("args", "code", "shown"),
    [
        pytest.param(["run-job", "purge-retention"], 0, "purge-retention", id="known-job"),
        pytest.param(["run-job", "nope"], 2, "no job", id="unknown-job"),
        pytest.param(["export-report", "2026-13"], 2, "YYYY-MM", id="bad-period"),
        pytest.param(["export-report", "2026-10"], 1, "no report stored", id="nothing-stored"),
    ],
)
def test_run_job_and_export(app: typer.Typer, args: list[str], code: int, shown: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    assert shown in result.output


def test_export_report_computes_and_writes_csv(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    result = CliRunner().invoke(app, ["export-report", "2026-10", "--compute", "--output", str(out)])
    # A fresh database has nobody: no municipality to report, which the command says.
    assert result.exit_code == 1 and not out.exists()
