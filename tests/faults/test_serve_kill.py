"""`kill -9` of the serving process itself (`run_bot.py serve`) in the middle of a fan-out of 10,000 SMS,
then `serve` again on the same database: every delivery ends sent, every number got its alert, and at
most the sends not yet recorded at the kill went out twice (Twilio has no idempotency key for a send).

The provider is the local counting fake Twilio API with rate limits off; the database is the test's own
(SQLite here, PostgreSQL in CI's second run). Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from bot.clock import utcnow
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory
from tests.e2e.test_workers import free_port
from tests.fakes.twilio_api import FakeTwilioApi
from tests.faults.outbox import ACCOUNT_SID, AUTH_TOKEN, child_env, fault_values, seed_fanout, unfinished
from tests.faults.test_dispatch_faults import UNRECORDED, assert_each_sent_once

ROOT = Path(__file__).resolve().parents[2]
FANOUT = 10_000
WAIT_S = 180.0


@pytest.fixture
def provider() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


def wait_until(done: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until `done()`; fail (not hang) after WAIT_S or when the server died."""
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert process.poll() is None, f"serve ended while waiting for {what}:\n{log.read_text()[-3000:]}"
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_serve(env: dict[str, str], port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`run_bot.py serve` as a child process, its output to the log."""
    return subprocess.Popen(
        [sys.executable, "run_bot.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=os.environ | env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def healthy(port: int) -> bool:
    """Whether the server answers /healthz with 200."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_kill_9_of_serve_mid_fan_out_then_serve_again_sends_each_alert(
    database_url: str, sessions: SessionFactory, provider: FakeTwilioApi, tmp_path: Path
) -> None:
    data_key = new_data_key()
    fanout = seed_fanout(sessions, DataVault(data_key), utcnow(), FANOUT)
    # The second server takes back the dead one's claims at once (nobody else is sending).
    values = fault_values(database_url, data_key, provider.base_url, dispatch_claim_timeout_s=0)
    env = child_env(values) | {"ENVIRONMENT": "test", "DATA_KEY_FILE": str(tmp_path / "unused.key")}
    log_path = tmp_path / "serve.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        first = start_serve(env, free_port(), log)
        try:
            wait_until(lambda: provider.accepted() >= FANOUT // 3, "a third sent", first, log_path)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        at_kill = provider.accepted()
        assert at_kill < FANOUT and unfinished(sessions) > 0, "the kill came mid fan-out"
        port = free_port()
        second = start_serve(env, port, log)
        try:
            wait_until(lambda: healthy(port), "the second serve to answer", second, log_path)
            wait_until(lambda: unfinished(sessions) == 0, "the outbox to drain", second, log_path)
        finally:
            second.terminate()
            try:
                second.wait(timeout=20)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()
    doubles = assert_each_sent_once(sessions, provider, fanout.numbers, doubles_allowed=UNRECORDED)
    print(
        f"serve SIGKILLed after {at_kill} of {FANOUT} accepted; after the restart all sent, "
        f"{doubles} alerts sent twice (unrecorded at most {UNRECORDED}); {time.monotonic() - started:.1f} s"
    )
