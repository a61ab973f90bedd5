"""The scheduler service: leadership, the job store in our database, run-job, two processes on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.jobs import JobContext, JobResult
from scheduler.service import (
    JOB_TABLE,
    JobBusy,
    JobSpec,
    LockFactory,
    SchedulerService,
    UnknownJob,
    default_jobs,
    stored_next_runs,
)

ROOT = Path(__file__).resolve().parents[2]


class Probe:
    """A job that counts its runs and can be told to wait."""

    def __init__(self) -> None:
        self.runs = 0
        self.ran = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, ctx: JobContext) -> JobResult:
        self.runs += 1
        self.ran.set()
        await self.release.wait()
        result = JobResult()
        result.add("runs")
        return result


def probe_service(
    job_context: JobContext, probe: Probe, *, key: str, seconds: int = 3600
) -> SchedulerService:
    spec = JobSpec("probe", probe, IntervalTrigger(seconds=seconds), "counts its runs")
    return SchedulerService(job_context, jobs=[spec], key=key, poll_seconds=0.05)


async def test_run_job_runs_it_now_and_refuses_a_second_at_once(job_context: JobContext) -> None:
    probe = Probe()
    service = probe_service(job_context, probe, key="a")
    other = probe_service(job_context, probe, key="b")  # e.g. `run_bot.py run-job` in another process
    result = await service.run_job("probe")
    assert result.counts == {"runs": 1}
    probe.release.clear()
    probe.ran.clear()  # else the wait below returns before the second run has taken the job's lock
    running = asyncio.create_task(service.run_job("probe"))
    await asyncio.wait_for(probe.ran.wait(), 5)
    with pytest.raises(JobBusy):
        await other.run_job("probe")
    probe.release.set()
    await running
    assert probe.runs == 2
    assert (await other.run_job("probe")).counts == {"runs": 1}
    with pytest.raises(UnknownJob):
        await service.run_job("nope")


async def test_leader_stores_its_jobs_in_our_database_and_a_second_takes_over(
    job_context: JobContext, database_url: str
) -> None:
    first, second = Probe(), Probe()
    leader = probe_service(job_context, first, key="first", seconds=1)
    standby = probe_service(job_context, second, key="second", seconds=1)
    await leader.start()
    await asyncio.wait_for(leader.leading.wait(), 10)
    await standby.start()
    try:
        await asyncio.wait_for(first.ran.wait(), 10)
        assert leader.is_leader and not standby.is_leader
        assert leader.is_running and standby.is_running
        stored = stored_next_runs(database_url)
        assert list(stored) == ["probe"] and stored["probe"] is not None
        assert second.runs == 0

        await leader.stop()
        await asyncio.wait_for(standby.leading.wait(), 10)
        await asyncio.wait_for(second.ran.wait(), 10)
        assert standby.is_leader
    finally:
        await leader.stop()
        await standby.stop()
    assert not standby.is_leader


async def test_jobs_lists_every_job_with_its_next_run(job_context: JobContext) -> None:
    service = SchedulerService(job_context)
    infos = {info.name: info for info in service.list_jobs()}
    assert set(infos) == {s.name for s in default_jobs(job_context.settings)}
    now = job_context.clock()
    assert all(info.next_run is not None and info.next_run > now for info in infos.values())
    report = infos["monthly-report"].next_run
    assert report is not None and report.day == 1


def test_the_job_table_is_no_model_table(database_url: str) -> None:
    """Migrations leave the job store's table to APScheduler; it appears only once a scheduler leads."""
    from sqlmodel import SQLModel

    assert JOB_TABLE not in SQLModel.metadata.tables
    engine = sa.create_engine(database_url)
    try:
        assert not sa.inspect(engine).has_table(JOB_TABLE)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------
# Two processes on PostgreSQL
# --------------------------------------------------------------------------------------------------


def _runs(url: str) -> list[tuple[int, float, float | None]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(sa.text("SELECT pid, started, ended FROM probe_run ORDER BY started"))
            ]
    finally:
        engine.dispose()


def _wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.postgres
@pytest.mark.slow
def test_two_scheduler_processes_never_run_a_job_at_the_same_time(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE probe_run (id serial PRIMARY KEY, pid int, started float8, ended float8)")
        )
    engine.dispose()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.scheduler.leader_child", postgres_url],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    killed_at: dict[int, float] = {}
    first = spawn()
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait_for(lambda: any(pid == first.pid for pid, _, _ in _runs(postgres_url)), 30)
        second = spawn()
        # Both alive for a while, and `run-job` from a third process (this one) now and then.
        from tests.scheduler.leader_child import context, probe_spec

        bystander = SchedulerService(context(postgres_url), jobs=[probe_spec()], key="bystander")
        busy = ran = 0
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            try:
                asyncio.run(bystander.run_job("probe"))
                ran += 1
            except JobBusy:
                busy += 1
            time.sleep(0.3)
        # Runs of the leader and of `run-job` contend for the one job lock; which one wins varies.
        assert ran + busy > 0 and ran > 0
        assert not any(pid == second.pid for pid, _, _ in _runs(postgres_url)), "the second process waits"

        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at[first.pid] = time.time()
        _wait_for(lambda: any(pid == second.pid for pid, _, _ in _runs(postgres_url)), 30)
        _wait_for(lambda: sum(pid == second.pid for pid, _, _ in _runs(postgres_url)) >= 3, 30)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
                killed_at[process.pid] = time.time()
    runs = _runs(postgres_url)
    intervals = sorted(
        (started, ended if ended is not None else killed_at.get(pid, time.time()))
        for pid, started, ended in runs
    )
    overlaps = [(a, b) for a, b in zip(intervals, intervals[1:], strict=False) if b[0] < a[1]]
    assert overlaps == []
    pids = {pid for pid, _, _ in runs}
    assert {first.pid, second.pid} <= pids
    assert len(runs) >= 5


def test_lock_factory_uses_a_file_lock_per_sqlite_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    one, two = LockFactory(url), LockFactory(url)
    a, b = one.lock("leader"), two.lock("leader")
    assert a.try_acquire() and not b.try_acquire()
    a.release()
    assert b.try_acquire()
    b.release()
