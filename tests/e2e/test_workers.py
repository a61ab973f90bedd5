"""`run_bot.py serve --workers 2` on one PostgreSQL: an action's alerts each go out exactly once.

Both worker processes run an outbox worker and a scheduler candidate; the deliveries are shared through
`SELECT … FOR UPDATE SKIP LOCKED`, so the fake Twilio API must see every participant once and nobody
twice, whichever worker took the launch request.
"""

from __future__ import annotations

import os
import socket
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
from tests.fakes.twilio_api import FakeTwilioApi

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "w0rk" * 8
TOKEN = "two-workers-token-0123456789"
PEOPLE = 60
ENSCHEDE = (52.2215, 6.8937)
WAIT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def data_key() -> str:
    return new_data_key()


@pytest.fixture
def server(postgres_url: str, fake: FakeTwilioApi, data_key: str, tmp_path: Path) -> Iterator[str]:
    """`serve --workers 2` on the test database, sending SMS through the fake Twilio API."""
    port = free_port()
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
        "DISPATCH_RATE_LIMITS": "false",
        "DISPATCH_POLL_INTERVAL_S": "0.1",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "run_bot.py", "serve", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve --workers 2 never answered /healthz"
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_two_workers_send_each_alert_once(
    postgres_url: str, data_key: str, fake: FakeTwilioApi, server: str
) -> None:
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    vault = DataVault(data_key)
    now = datetime.now(UTC)
    numbers = set()
    for _ in range(PEOPLE):
        person = seed_person(sessions, vault, now, at=ENSCHEDE, channels=[ChannelKind.SMS])
        numbers.add(person.addresses[ChannelKind.SMS])
    engine.dispose()

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server, headers=auth, timeout=30) as api:
        action = api.post(
            "/api/v1/actions",
            json={
                "type": "robbery",
                "headline": "Overval op juwelier, dader op scooter gevlucht",
                "description": "Man, donkere kleding, zwarte helm.",
                "instruction": "Ziet u hem? Bel 112.",
                "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}},
                "expires_at": (now + timedelta(hours=1)).isoformat(),
            },
        ).json()
        assert api.post(f"/api/v1/actions/{action['id']}/launch").status_code == 200

        deadline = time.monotonic() + WAIT_S
        while len(fake.messages()) < PEOPLE and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a double would come now, if any worker sent a claimed row again
        shown = api.get(f"/api/v1/actions/{action['id']}").json()

    sent_to = [form["To"] for form in fake.messages()]
    assert sorted(sent_to) == sorted(numbers)
    assert shown["deliveries"]["alert"]["by_status"] == {"sent": PEOPLE}
