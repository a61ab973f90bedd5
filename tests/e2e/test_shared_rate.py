"""Three `serve` processes on one PostgreSQL send an action's alerts at the configured SMS rate together.

Each process runs its own outbox worker; the send budget in the database (bot/send_budget.py) is what
keeps their sum at `DISPATCH_RATE_SMS` for the one sending number. The fake Twilio API timestamps every
message it accepts: the aggregate rate must be within 5% of the configured rate, no five-second window
may see more than 105% of it, and every participant gets the alert exactly once.

Five seconds, because the fake stamps a message when it arrives, after the sending process, the loopback
and the fake's own thread were scheduled on a machine that also runs three servers and PostgreSQL: one
message's arrival jitter is 1% of a five-second window (100 messages) but 2.5% of a two-second one, where
a single late send followed by one on time already reads as 102.5%.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from storage.crypto import DataVault, new_data_key
from storage.db import make_engine, session_factory
from storage.vocabulary import ChannelKind
from tests.actions.conftest import seed_person
from tests.e2e.test_workers import free_port
from tests.fakes.twilio_api import FakeTwilioApi

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "r4te" * 8
TOKEN = "shared-rate-token-0123456789"
PROCESSES = 3
RATE = 20.0
PEOPLE = 300
WINDOW_S = 5.0
WARM_UP = 30
ENSCHEDE = (52.2215, 6.8937)
ZWOLLE = (52.5168, 6.0830)
WAIT_S = 90.0


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def data_key() -> str:
    return new_data_key()


def _healthy(base: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"{base} never answered /healthz"
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


@pytest.fixture
def servers(postgres_url: str, fake: FakeTwilioApi, data_key: str, tmp_path: Path) -> Iterator[list[str]]:
    """Three separate `serve` processes on the test database, sending SMS through the fake Twilio API."""
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "DATA_KEY": data_key,
        "DATA_KEY_FILE": str(tmp_path / "unused.key"),
        "API_TOKEN": TOKEN,
        "ENVIRONMENT": "test",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_SMS_FROM": "+3197010254321",
        "TWILIO_API_BASE_URL": fake.base_url,
        "DISPATCH_RATE_LIMITS": "true",
        "DISPATCH_RATE_SMS": str(RATE),
        "DISPATCH_POLL_INTERVAL_S": "0.1",
        # Small claims, so that every process holds part of the queue and sends at the same time.
        "DISPATCH_BATCH_SIZE": "8",
    }
    processes: list[tuple[subprocess.Popen[bytes], Path, str]] = []
    logs = []
    try:
        for n in range(PROCESSES):
            port = free_port()
            path = tmp_path / f"serve-{n}.log"
            log = path.open("wb")
            logs.append(log)
            process = subprocess.Popen(
                [sys.executable, "run_bot.py", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            processes.append((process, path, f"http://127.0.0.1:{port}"))
        deadline = time.monotonic() + WAIT_S
        for process, path, base in processes:
            _healthy(base, process, path, deadline)
        yield [base for _, _, base in processes]
    finally:
        for process, _, _ in processes:
            process.terminate()
        for process, _, _ in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


def _launch(api: httpx.Client, at: tuple[float, float], now: datetime) -> int:
    action = api.post(
        "/api/v1/actions",
        json={
            "type": "robbery",
            "headline": "Overval op juwelier, dader op scooter gevlucht",
            "description": "Man, donkere kleding, zwarte helm.",
            "instruction": "Ziet u hem? Bel 112.",
            "area": {"circle": {"lat": at[0], "lon": at[1], "radius_m": 3000}},
            "expires_at": (now + timedelta(hours=1)).isoformat(),
        },
    ).json()
    assert api.post(f"/api/v1/actions/{action['id']}/launch").status_code == 200
    return int(action["id"])


def _wait_for(fake: FakeTwilioApi, count: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while len(fake.messages()) < count and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.serial
def test_three_processes_share_one_sms_rate(
    postgres_url: str, data_key: str, fake: FakeTwilioApi, servers: list[str]
) -> None:
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    vault = DataVault(data_key)
    now = datetime.now(UTC)
    for _ in range(WARM_UP):
        seed_person(sessions, vault, now, at=ZWOLLE, channels=[ChannelKind.SMS])
    numbers = set()
    for _ in range(PEOPLE):
        person = seed_person(sessions, vault, now, at=ENSCHEDE, channels=[ChannelKind.SMS])
        numbers.add(person.addresses[ChannelKind.SMS])
    engine.dispose()

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=servers[0], headers=auth, timeout=30) as api:
        # A small action first, so that every process has its connections to the provider open: what is
        # measured is the shared rate, not three processes' first TCP handshakes arriving together.
        _launch(api, ZWOLLE, now)
        _wait_for(fake, WARM_UP)
        fake.clear()
        action_id = _launch(api, ENSCHEDE, now)
        _wait_for(fake, PEOPLE)
        time.sleep(1.0)  # a double would come now, if any process sent a claimed row again
        shown = api.get(f"/api/v1/actions/{action_id}").json()

    sent_to = [form["To"] for form in fake.messages()]
    assert sorted(sent_to) == sorted(numbers)
    assert shown["deliveries"]["alert"]["by_status"] == {"sent": PEOPLE}

    times = fake.message_times()
    overall = (len(times) - 1) / (times[-1] - times[0])
    assert RATE * 0.95 <= overall <= RATE * 1.05, f"{overall:.2f}/s against {RATE}/s"
    busiest = max(sum(1 for t in times[i:] if t < start + WINDOW_S) for i, start in enumerate(times))
    assert busiest <= RATE * WINDOW_S * 1.05, f"{busiest} sends in {WINDOW_S} s against {RATE}/s"
