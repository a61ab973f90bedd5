"""The scheduler service: APScheduler 3 (`AsyncIOScheduler`) with its job store in our database.

Only one process runs the scheduler at a time. On PostgreSQL the leader holds a session-level
`pg_try_advisory_lock` on a dedicated connection for as long as it runs; the others poll and take
over when the leader's connection goes away (its process died). On SQLite one process leads (a file
lock beside the database). Each job run also takes a lock of its own, so `run-job` from the command
line never runs a job at the same time as the scheduler does.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import logging
import os
import threading
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from fastapi import APIRouter
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from bot.config import Settings
from scheduler import jobs as job_functions
from scheduler.jobs import JobContext, JobResult
from storage.db import is_sqlite

log = logging.getLogger(__name__)

JOB_TABLE = "apscheduler_jobs"
LOCK_NAMESPACE = 0x4275  # "Bu": the first key of our two-key advisory locks
LEADER_KEY = 0

JobFunction = Callable[[JobContext], Awaitable[JobResult] | JobResult]


@dataclass(frozen=True)
class JobSpec:
    """A job: its name, the plain function, when it runs, and one line on what it does."""

    name: str
    function: JobFunction
    trigger: BaseTrigger
    description: str


@dataclass(frozen=True)
class JobInfo:
    """A job as `run_bot.py jobs` shows it."""

    name: str
    description: str
    trigger: str
    next_run: datetime | None


class JobBusy(RuntimeError):
    """The job is running right now (here or in another process)."""


class UnknownJob(KeyError):
    """No job by that name."""


def default_jobs(settings: Settings) -> list[JobSpec]:
    """The maintenance jobs and their schedules (local time for the daily and monthly ones)."""
    tz = settings.timezone
    specs = [
        JobSpec(
            "reconfirm",
            job_functions.reconfirm,
            IntervalTrigger(minutes=1, timezone=tz),
            "ask, remind and expire participants who have not confirmed for a year",
        ),
        JobSpec(
            "clean-signups",
            job_functions.clean_signups,
            IntervalTrigger(minutes=15, timezone=tz),
            "delete sign-ups left unfinished for a day",
        ),
        JobSpec(
            "close-actions",
            job_functions.close_expired_actions,
            IntervalTrigger(minutes=1, timezone=tz),
            "close actions past their end, with the closing message",
        ),
        JobSpec(
            "widen-rings",
            job_functions.widen_rings,
            IntervalTrigger(minutes=1, timezone=tz),
            "widen running actions with rings whose next ring is due",
        ),
        JobSpec(
            "reconcile-deliveries",
            job_functions.reconcile_deliveries,
            IntervalTrigger(minutes=5, timezone=tz),
            "retry or fail deliveries stuck in sending",
        ),
        JobSpec(
            "purge-retention",
            job_functions.purge_retention,
            CronTrigger(hour=3, minute=30, timezone=tz),
            "purge tips, deliveries and logs past their retention; audit log after a year",
        ),
        JobSpec(
            "rehash-lookups",
            job_functions.rehash_lookups,
            CronTrigger(hour=3, minute=45, timezone=tz),
            "while LOOKUP_KEY lists an older key, move the look-up hashes to the newest",
        ),
        JobSpec(
            "monthly-report",
            job_functions.monthly_report,
            CronTrigger(day=1, hour=4, minute=0, timezone=tz),
            "figures per municipality for the month before",
        ),
    ]
    return specs


# --------------------------------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------------------------------


class Lock(Protocol):
    """A lock that is tried, never waited for."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when someone else holds it."""
        ...

    def holds(self) -> bool:
        """Whether we still hold it (a lost database connection loses it)."""
        ...

    def release(self) -> None:
        """Give the lock back (safe when not held)."""
        ...


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock, held on its own connection until released."""

    def __init__(self, engine: Engine, key: int) -> None:
        self._engine = engine
        self._key = key
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free."""
        if self._conn is not None:
            return self.holds()
        conn = self._engine.connect()
        try:
            got = bool(
                conn.execute(sa.select(sa.func.pg_try_advisory_lock(LOCK_NAMESPACE, self._key))).scalar()
            )
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
        else:
            conn.close()
        return got

    def holds(self) -> bool:
        """Whether the connection that holds the lock is still alive."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
        except sa.exc.DBAPIError:
            self._drop()
            return False
        return True

    def release(self) -> None:
        """Unlock and close the connection."""
        if self._conn is None:
            return
        with contextlib.suppress(sa.exc.DBAPIError):
            self._conn.execute(sa.select(sa.func.pg_advisory_unlock(LOCK_NAMESPACE, self._key)))
        self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class FileLock:
    """An exclusive `flock` on a file: one holder among the processes of this machine."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._handle: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free."""
        if self._handle is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("a")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._handle = handle
        return True

    def holds(self) -> bool:
        """Whether we hold it."""
        return self._handle is not None

    def release(self) -> None:
        """Unlock."""
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class ThreadLock:
    """A lock within this process only (an in-memory SQLite database has no other process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free."""
        self._held = self._lock.acquire(blocking=False)
        return self._held

    def holds(self) -> bool:
        """Whether we hold it."""
        return self._held

    def release(self) -> None:
        """Unlock."""
        if self._held:
            self._held = False
            self._lock.release()


def job_key(name: str) -> int:
    """A stable, positive 31-bit key for a job's advisory lock (0 is the leader's)."""
    return (zlib.crc32(name.encode()) & 0x7FFFFFFF) or 1


class LockFactory:
    """Makes the leader lock and the per-job locks that suit the database."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._engine: Engine | None = None
        self._local: dict[str, ThreadLock] = {}

    def _pg_engine(self) -> Engine:
        if self._engine is None:
            # Its own connections, outside the pool, in autocommit: an idle-in-transaction
            # connection could be cut by the server and silently drop the lock.
            self._engine = sa.create_engine(self._url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        return self._engine

    def _sqlite_path(self) -> Path | None:
        path = self._url.split("///", 1)[-1]
        return None if not path or path == ":memory:" else Path(path)

    def lock(self, name: str) -> Lock:
        """The lock called `name` (`leader`, or a job's name)."""
        if not is_sqlite(self._url):
            return AdvisoryLock(self._pg_engine(), LEADER_KEY if name == "leader" else job_key(name))
        path = self._sqlite_path()
        if path is None:
            return self._local.setdefault(name, ThreadLock())
        return FileLock(path.with_name(f"{path.name}.{name}.lock"))

    def dispose(self) -> None:
        """Close the lock connections' engine."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# --------------------------------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------------------------------


def run_scheduled(name: str) -> None:
    """What the job store names for every job: the leading service's own executor runs the job by its id.

    The job store keeps a textual reference and the job's arguments, never live objects; the service that
    leads hands the due job to `SchedulerService.run_due` through `_ServiceExecutor`, so nothing has to
    find the service again through a process-wide table.
    """
    raise JobNotScheduled(name)


class JobNotScheduled(RuntimeError):
    """A stored job was run by an executor other than its service's own."""


class _ServiceExecutor(AsyncIOExecutor):
    """APScheduler's asyncio executor, running each due job on the service that made it."""

    def __init__(self, run: Callable[[str], Awaitable[None]]) -> None:
        super().__init__()
        self._run = run

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def finished(task: asyncio.Future[None]) -> None:
            self._pending_futures.discard(task)
            error = None if task.cancelled() else task.exception()
            if error is None:
                self._run_job_success(job.id, [])
            else:
                self._run_job_error(job.id, error, error.__traceback__)

        task = self._eventloop.create_task(self._run(job.id))
        task.add_done_callback(finished)
        self._pending_futures.add(task)


class SchedulerService:
    """Runs the jobs on their schedules while this process is the leader; runs one on demand."""

    def __init__(
        self,
        context: JobContext,
        *,
        jobs: Sequence[JobSpec] | None = None,
        key: str = "main",
        locks: LockFactory | None = None,
        poll_seconds: float | None = None,
    ) -> None:
        self.context = context
        settings = context.settings
        self.specs: dict[str, JobSpec] = {
            s.name: s for s in (jobs if jobs is not None else default_jobs(settings))
        }
        self.key = key
        self._locks = locks or LockFactory(settings.database.url)
        self._poll = poll_seconds if poll_seconds is not None else settings.scheduler.leader_poll_seconds
        self._leader: Lock | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._jobstore_engine: Engine | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self.leading = asyncio.Event()

    @property
    def is_running(self) -> bool:
        """Whether the service is up (leading, or standing by to take over): for `/healthz`."""
        return self._task is not None and not self._task.done()

    @property
    def is_leader(self) -> bool:
        """Whether this process runs the schedule now."""
        return self._scheduler is not None

    async def start(self) -> None:
        """Begin trying to lead (in the background; returns at once)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._lead(), name=f"scheduler-{self.key}")

    async def stop(self) -> None:
        """Stop the schedule and give up the leadership."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._step_down()
        self._locks.dispose()

    def routes(self) -> list[APIRouter]:
        """The scheduler serves no routes (`/healthz` asks `is_running`)."""
        return []

    async def _lead(self) -> None:
        self._leader = self._locks.lock("leader")
        while not self._stopping.is_set():
            try:
                if self._scheduler is None:
                    if await asyncio.to_thread(self._leader.try_acquire):
                        self._take_over()
                elif not await asyncio.to_thread(self._leader.holds):
                    log.warning("scheduler lost its leader lock; stepping down")
                    self._step_down()
            except Exception as exc:
                # The database went away or the job store failed: step down and try again later.
                log.warning("scheduler leadership check failed: %s", type(exc).__name__)
                self._step_down()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._poll)

    def _take_over(self) -> None:
        settings = self.context.settings
        self._jobstore_engine = _jobstore_engine(settings.database.url)
        scheduler = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=self._jobstore_engine, tablename=JOB_TABLE)},
            executors={"default": _ServiceExecutor(self.run_due)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=settings.timezone,
        )
        scheduler.start(paused=True)
        for spec in self.specs.values():
            existing = scheduler.get_job(spec.name)
            if existing is not None and str(existing.trigger) == str(spec.trigger):
                # Keep the stored next run time: a job missed while nobody led runs once on resume.
                existing.modify(func=run_scheduled, args=[spec.name])
            else:
                scheduler.add_job(
                    run_scheduled,
                    trigger=spec.trigger,
                    args=[spec.name],
                    id=spec.name,
                    name=spec.name,
                    replace_existing=True,
                )
        for job in scheduler.get_jobs():
            if job.id not in self.specs:
                job.remove()
        scheduler.resume()
        self._scheduler = scheduler
        self.leading.set()
        log.info("scheduler leads in process %s with %d jobs", os.getpid(), len(self.specs))

    def _step_down(self) -> None:
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._jobstore_engine is not None:
            self._jobstore_engine.dispose()
            self._jobstore_engine = None
        if self._leader is not None:
            self._leader.release()
        self.leading.clear()

    async def run_due(self, name: str) -> None:
        """Run a job whose time has come (skipped when it is busy elsewhere; a failure is logged)."""
        try:
            await self.run_job(name)
        except JobBusy:
            log.info("job %s is already running elsewhere; this run skipped", name)
        except Exception:
            log.exception("job %s failed", name)

    async def run_job(self, name: str) -> JobResult:
        """Run one job now, under its lock; raises JobBusy when it is running already."""
        spec = self.specs.get(name)
        if spec is None:
            raise UnknownJob(name)
        lock = self._locks.lock(f"job-{name}")
        if not await asyncio.to_thread(lock.try_acquire):
            raise JobBusy(name)
        try:
            started = self.context.clock()
            if _is_async(spec.function):
                result = await spec.function(self.context)  # type: ignore[misc]
            else:
                # Database work off the event loop: the bot keeps answering while a purge runs.
                result = await asyncio.to_thread(spec.function, self.context)
            assert isinstance(result, JobResult)
            log.info("job %s (%s): %s", name, started.isoformat(timespec="seconds"), result)
            return result
        finally:
            await asyncio.to_thread(lock.release)

    def list_jobs(self) -> list[JobInfo]:
        """Every job with its schedule and next run (stored, else the trigger's next time from now)."""
        stored = stored_next_runs(self.context.settings.database.url)
        now = self.context.clock()
        infos = []
        for spec in self.specs.values():
            if spec.name in stored:
                next_run = stored[spec.name]
            else:
                next_run = spec.trigger.get_next_fire_time(None, now)
            infos.append(JobInfo(spec.name, spec.description, str(spec.trigger), next_run))
        return infos


def _is_async(function: JobFunction) -> bool:
    call = getattr(function, "__call__", None)  # noqa: B004  (a callable object's async __call__)
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


def _jobstore_engine(url: str) -> Engine:
    if is_sqlite(url):
        return sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def stored_next_runs(database_url: str) -> dict[str, datetime | None]:
    """The next run time of each job in the job store (empty when the store was never made)."""
    engine = _jobstore_engine(database_url)
    try:
        if not sa.inspect(engine).has_table(JOB_TABLE):
            return {}
        table = sa.table(JOB_TABLE, sa.column("id"), sa.column("next_run_time"))
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.id, table.c.next_run_time)).all()
        return {
            str(job_id): datetime.fromtimestamp(float(ts), UTC) if ts is not None else None
            for job_id, ts in rows
        }
    finally:
        engine.dispose()
