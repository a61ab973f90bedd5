"""Faults at the provider and in the sending process: every delivery ends sent exactly once.

The provider is the local fake Twilio API (counting what it accepted, per recipient); the dispatcher is
the real one with the real Twilio channel, in this process or in child processes that are killed with
SIGKILL. Everything stays on loopback and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.clock import utcnow
from bot.dispatch import MAX_UNRECORDED
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, make_engine, session_factory
from storage.vocabulary import DeliveryStatus
from tests.fakes.twilio_api import FakeTwilioApi
from tests.faults.outbox import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    child_env,
    fault_settings,
    fault_values,
    provider_ids,
    seed_fanout,
    sms_dispatcher,
    statuses,
    unfinished,
)

ROOT = Path(__file__).resolve().parents[2]
FANOUT = 10_000
CONCURRENCY = 16  # consumers per lane
# Each consumer may have MAX_UNRECORDED sends accepted but not yet committed (the group commit): the most
# a SIGKILL can make us send twice.
UNRECORDED = CONCURRENCY * MAX_UNRECORDED
SENT = DeliveryStatus.SENT.value


@pytest.fixture
def provider() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def data_key() -> str:
    return new_data_key()


def accepted_per_number(provider: FakeTwilioApi) -> Counter[str]:
    """How many times the provider accepted a message for each number."""
    return Counter(form["To"] for form in provider.messages())


def wait_until(done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll until `done()`; fail (not hang) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_child(env: dict[str, str]) -> subprocess.Popen[str]:
    """A dispatcher process (tests/faults/dispatch_child.py) with the given settings."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.dispatch_child"],
        cwd=ROOT,
        env=os.environ | env | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(child: subprocess.Popen[str], timeout_s: float) -> int:
    """Wait for a child to end by itself (killed, and failing, when it takes too long); how many it sent."""
    try:
        output, _ = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        output, _ = child.communicate()
        pytest.fail(f"dispatcher child did not finish in {timeout_s} s:\n{output[-3000:]}")
    assert child.returncode == 0, output[-3000:]
    return int(output.strip().rsplit("sent ", 1)[-1])


def assert_each_sent_once(
    sessions: SessionFactory, provider: FakeTwilioApi, numbers: list[str], *, doubles_allowed: int = 0
) -> int:
    """None lost (provider side and in our rows), at most `doubles_allowed` extra sends; returns doubles."""
    counts = accepted_per_number(provider)
    assert set(counts) == set(numbers), f"{len(set(numbers) - set(counts))} recipients never got the alert"
    doubles = sum(n - 1 for n in counts.values())
    assert doubles <= doubles_allowed, counts.most_common(5)
    assert statuses(sessions) == Counter({SENT: len(numbers)})
    # Every provider id we recorded is a message the provider really accepted.
    accepted = {r.sid for r in provider.requests if 200 <= r.status < 300}
    assert provider_ids(sessions) <= accepted
    return doubles


@pytest.mark.slow
def test_kill_9_in_the_middle_of_a_fan_out_then_restart_sends_each_once(
    database_url: str, sessions: SessionFactory, provider: FakeTwilioApi, data_key: str
) -> None:
    fanout = seed_fanout(sessions, DataVault(data_key), utcnow(), FANOUT)
    # The restarted worker takes back every claim at once (on PostgreSQL too: nobody else is sending).
    values = fault_values(database_url, data_key, provider.base_url, dispatch_claim_timeout_s=0)
    first = start_child(child_env(values))
    wait_until(lambda: provider.accepted() >= FANOUT // 3 or first.poll() is not None, 180, "a third sent")
    assert first.poll() is None, "the dispatcher ended before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert 0 < provider.accepted() < FANOUT
    assert unfinished(sessions) > 0
    second = start_child(child_env(values))
    finish(second, 240)
    # A SIGKILL between the provider's 201 and our commit of its id sends that alert again on restart:
    # Twilio has no idempotency key for a send, so at most the unrecorded sends can be doubled.
    doubles = assert_each_sent_once(sessions, provider, fanout.numbers, doubles_allowed=UNRECORDED)
    print(f"SIGKILL after {FANOUT // 3}+ of {FANOUT} sent: {doubles} alerts sent twice")


@pytest.mark.postgres
@pytest.mark.slow
def test_two_dispatcher_processes_on_one_postgres_outbox_send_each_once(
    postgres_url: str, provider: FakeTwilioApi, data_key: str
) -> None:
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    fanout = seed_fanout(sessions, DataVault(data_key), utcnow(), 4_000)
    values = fault_values(postgres_url, data_key, provider.base_url)
    children = [start_child(child_env(values)) for _ in range(2)]
    shares = [finish(child, 240) for child in children]
    assert_each_sent_once(sessions, provider, fanout.numbers)
    engine.dispose()
    # Both did a share of the work (each claims with SKIP LOCKED, so neither waits for the other).
    assert sum(shares) == len(fanout.numbers)
    assert all(shares), shares


PROVIDER_FAULTS = [
    pytest.param(lambda p: p.fail_next(25, status=500, code=20500), id="500"),
    pytest.param(lambda p: p.fail_next(25, status=503, body="<html>down</html>"), id="503-html"),
    pytest.param(lambda p: p.fail_next(25, status=429, code=20429, retry_after=0.05), id="429-retry-after"),
    pytest.param(lambda p: p.drop_next(25), id="dropped-connections"),
    pytest.param(lambda p: p.drop_next(6, stall_s=0.6), id="time-outs"),
    pytest.param(
        lambda p: (
            p.fail_next(10, status=500),
            p.drop_next(10),
            p.fail_next(10, status=429, retry_after=0.05),
        ),
        id="mixed",
    ),
]


@pytest.mark.parametrize("fault", PROVIDER_FAULTS)
async def test_provider_faults_are_retried_with_backoff_until_it_recovers(
    database_url: str,
    sessions: SessionFactory,
    provider: FakeTwilioApi,
    data_key: str,
    fault: Callable[[FakeTwilioApi], object],
) -> None:
    fanout = seed_fanout(sessions, DataVault(data_key), utcnow(), 150)
    fault(provider)
    planned = provider.pending_faults()
    settings = fault_settings(database_url, data_key, provider.base_url)
    # A short client time-out: the stalled requests time out long before the provider would answer.
    dispatcher, twilio = sms_dispatcher(sessions, settings, utcnow, timeout_s=0.3)
    running = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(60):
            while unfinished(sessions):
                assert not running.done(), running
                await asyncio.sleep(0.05)
    finally:
        dispatcher.stop()
        await running
        await twilio.aclose()
    assert provider.pending_faults() == 0
    failed = [r for r in provider.requests if not 200 <= r.status < 300]
    assert len(failed) == planned
    assert_each_sent_once(sessions, provider, fanout.numbers)
