"""A scheduler process for the leadership test: runs a probe job every second until it is killed.

`python -m tests.scheduler.leader_child DATABASE_URL` — the probe writes (pid, start, end) rows to
`probe_run`, so the test can check that no two runs ever overlap.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger

from bot.clock import utcnow
from bot.config import load_settings
from bot.texts import Catalogue
from scheduler.jobs import JobContext, JobResult
from scheduler.service import JobSpec, SchedulerService
from storage.crypto import DataVault, new_data_key
from storage.db import make_engine, session_factory

PROBE_SECONDS = 0.4


def probe(ctx: JobContext) -> JobResult:
    """Note the start, take a while, note the end."""
    with ctx.sessions() as session:
        run_id = session.execute(
            sa.text("INSERT INTO probe_run (pid, started) VALUES (:pid, :t) RETURNING id"),
            {"pid": os.getpid(), "t": time.time()},
        ).scalar_one()
        session.commit()
        time.sleep(PROBE_SECONDS)
        session.execute(
            sa.text("UPDATE probe_run SET ended = :t WHERE id = :id"), {"t": time.time(), "id": run_id}
        )
        session.commit()
    result = JobResult()
    result.add("runs")
    return result


def probe_spec() -> JobSpec:
    """The probe as a scheduled job, every second."""
    return JobSpec("probe", probe, IntervalTrigger(seconds=1), "writes when it runs")


def context(url: str) -> JobContext:
    """A job context on the database, with what the probe needs."""
    settings = load_settings(database_url=url, scheduler_leader_poll_seconds=0.2)
    return JobContext(
        sessions=session_factory(make_engine(url)),
        settings=settings,
        clock=utcnow,
        vault=DataVault(new_data_key()),
        catalogue=Catalogue.load(),
    )


async def main(url: str) -> None:
    """Lead when possible, forever."""
    service = SchedulerService(context(url), jobs=[probe_spec()], key="probe")
    await service.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
