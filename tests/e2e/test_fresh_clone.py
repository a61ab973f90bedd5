"""A clone in a folder with nothing beside it serves: `run_bot.py serve`, as `make run` runs it.

The clone is of the committed HEAD (what a user gets); it runs with this test's Python and packages,
but with the clone's own code and data, with no setting in the environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 120.0
# Only what a shell gives any program: no DATABASE_URL, POSTCODE_DATA or other setting of ours.
KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The repository's HEAD cloned into an empty temporary folder."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    head = subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    target = tmp_path / "burgernet-bot"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(REPOSITORY), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", "--detach", head], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["burgernet-bot"]
    return target


@pytest.mark.slow
def test_a_fresh_clone_serves_healthz(clone: Path) -> None:
    env = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    env["PYTHONPATH"] = str(clone)
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bot, storage.geo as g; print(bot.__file__); print(g.SHIPPED_POSTCODE_DATA)",
        ],
        cwd=clone,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert all(Path(line).is_relative_to(clone) for line in where), where  # the clone's code runs

    port = _free_port()
    env["HTTP_PORT"] = str(port)
    server = subprocess.Popen(
        [sys.executable, "run_bot.py", "serve"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    status = None
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline and server.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.25)  # polling a separate process: there is no clock to inject
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert status == 200, output
    assert "Traceback" not in output, output
    assert (clone / "data" / "burgernet.db").is_file()  # the default SQLite database, inside the clone
