"""The simulator speaks only for simulated people: with a real provider configured it is not there at all.

The attack: in development with Telegram (or Twilio) configured, a person registered for real, and the
simulator, posting as their number on SMS, was linked to them and answered MIJN GEGEVENS with their name
and address. Now the simulator runs only when no real provider is configured, `console` refuses to chat,
and `serve` says on stderr that the simulator is on (or why it is off).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.runtime import build_runtime
from run_bot import cli
from storage.crypto import new_data_key
from storage.models import ChannelIdentity, Participant
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.tips.conftest import person

ROOT = Path(__file__).resolve().parents[2]
DEAD_API = "http://127.0.0.1:9"  # nothing listens: nothing here may reach a provider
PROVIDERS = {
    "telegram": {
        "telegram_bot_token": "123456:real-looking-token",
        "telegram_webhook_secret": "hook-secret",
        "telegram_api_base_url": DEAD_API + "/bot",
    },
    "twilio": {
        "twilio_account_sid": "AC" + "1" * 32,
        "twilio_auth_token": "t" * 32,
        "twilio_sms_from": "+3197010254321",
        "twilio_api_base_url": DEAD_API,
    },
}


def _settings(database_url: str, **extra: object) -> Settings:
    return load_settings(
        database_url=database_url, data_key=new_data_key(), scheduler_enabled=False, simulator=True, **extra
    )


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_with_a_real_provider_the_simulator_cannot_speak_for_a_real_person(
    database_url: str, clock: FixedClock, provider: str
) -> None:
    runtime = build_runtime(_settings(database_url, **PROVIDERS[provider]), clock=clock, run_migrations=False)
    real = person(runtime.sessions, runtime.vault, clock(), ChannelKind.TELEGRAM)
    with runtime.sessions() as session:
        identities_before = len(session.exec(select(ChannelIdentity)).all())
        registered = session.get(Participant, real.participant_id)
        assert registered is not None and registered.phone_enc
        real_phone = runtime.vault.decrypt(registered.phone_enc)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://sim"
        ) as http:
            for channel, sender in (("sms", real_phone), ("whatsapp", real_phone), ("telegram", real.sender)):
                answer = await http.post(
                    "/simulator/messages",
                    json={"channel": channel, "sender": sender, "text": "MIJN GEGEVENS"},
                )
                # Before, this answered with the person's data (masked number, channels, name, address).
                assert "****" + real_phone[-4:] not in answer.text, "the simulator read a real person's data"
                assert answer.status_code == 404
            assert (await http.get("/simulator")).status_code == 404
            assert (
                await http.post("/simulator/history", json={"channel": "sms", "sender": "1"})
            ).status_code == 404
            home = await http.get("/")
            assert home.headers["location"] == "/controlroom"
        assert runtime.simulator_on is False
        assert all(sender is not runtime.simulator for sender in runtime.senders.values())
    finally:
        runtime.engine.dispose()
    with runtime.sessions() as session:
        assert len(session.exec(select(ChannelIdentity)).all()) == identities_before


async def test_without_providers_the_simulator_carries_every_channel(
    database_url: str, clock: FixedClock
) -> None:
    runtime = build_runtime(_settings(database_url), clock=clock, run_migrations=False)
    try:
        assert runtime.simulator_on is True
        assert {kind for kind, sender in runtime.senders.items() if sender is runtime.simulator} == set(
            ChannelKind
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://sim"
        ) as http:
            answer = await http.post(
                "/simulator/messages", json={"channel": "sms", "sender": "+31620000001", "text": "HELP"}
            )
        assert answer.status_code == 200 and answer.json()
    finally:
        runtime.engine.dispose()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)
    for name in os.environ:
        if name.startswith(("TELEGRAM_", "TWILIO_")) or name in ("ENVIRONMENT", "SIMULATOR", "DATA_KEY"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'cli.db'}")
    monkeypatch.setenv("DATA_KEY_FILE", str(tmp_path / "data" / "data.key"))
    return monkeypatch


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_console_refuses_to_chat_when_a_real_provider_is_configured(
    cli_env: pytest.MonkeyPatch, provider: str
) -> None:
    for name, value in PROVIDERS[provider].items():
        cli_env.setenv(name.upper(), value)
    result = CliRunner().invoke(cli, ["console", "--sender", "+31620000001"], input="MIJN GEGEVENS\n")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "real one" in lines[0], result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "warning", "simulator_served"),
    [
        pytest.param({}, "the simulator is on", True, id="simulator-on"),
        pytest.param(
            {name.upper(): value for name, value in PROVIDERS["twilio"].items()},
            "the simulator is off because Twilio is configured",
            False,
            id="simulator-off-with-twilio",
        ),
    ],
)
def test_serve_warns_about_the_simulator_at_start(
    tmp_path: Path, extra: dict[str, str], warning: str, simulator_served: bool
) -> None:
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TELEGRAM_", "TWILIO_", "SIMULATOR", "ENVIRONMENT"))
    }
    env |= {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "DATA_KEY_FILE": str(tmp_path / "data.key"),
        "SCHEDULER_ENABLED": "false",
        "ENVIRONMENT": "test",
        **extra,
    }
    err = (tmp_path / "serve.err").open("wb")
    process = subprocess.Popen(
        [sys.executable, "run_bot.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "serve.err").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve never answered /healthz"
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        page = httpx.get(base + "/simulator", timeout=5)
    finally:
        process.terminate()
        process.wait(timeout=20)
        err.close()
    stderr = (tmp_path / "serve.err").read_text()
    assert f"warning: {warning}" in stderr
    assert page.status_code == (200 if simulator_served else 404)
