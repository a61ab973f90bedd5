"""Start-up time and memory of `run_bot.py serve`: idle, with N participants, and under chat load.

Next to a bare Starlette app under uvicorn, started the same way in the same run (the baseline): the
ratio says what our wiring (migrations, NLU training, postcode table, channels, dispatcher, scheduler)
costs on top of the web server itself.

    .venv/bin/python -m bench.serve_bench --participants 10000
    .venv/bin/python -m bench.serve_bench --participants 1000000 --db /tmp/fan1m.db   # seeded once
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.fanout_bench import seed
from bot.config import load_settings
from storage.crypto import new_data_key
from storage.db import migrate

ROOT = Path(__file__).resolve().parent.parent
BARE_APP = """
import sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def health(request):
    return JSONResponse({"status": "ok"})

uvicorn.run(Starlette(routes=[Route("/healthz", health)]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
"""
START_TIMEOUT_S = 120.0


@dataclass
class Started:
    """A server process we started, how long it took to answer /healthz, and its address."""

    process: subprocess.Popen[bytes]
    seconds: float
    base_url: str

    def rss_mb(self) -> float:
        """The server's resident set size now, in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL after 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(command: list[str], env: dict[str, str], port: int) -> Started:
    """Start a server and wait until /healthz answers 200 (bounded)."""
    began = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = began + START_TIMEOUT_S
    with httpx.Client(timeout=2) as client:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{command[1]} exited with {process.returncode} before answering")
            try:
                if client.get(url + "/healthz").status_code == 200:
                    return Started(process, time.perf_counter() - began, url)
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    process.kill()
    raise SystemExit(f"{command[1]} did not answer /healthz within {START_TIMEOUT_S:.0f} s")


async def chat_load(base_url: str, messages: int, clients: int) -> tuple[int, float, float, float]:
    """Simulator messages from `clients` concurrent people: how many, messages/s, p50 and p99 in ms."""
    latencies: list[float] = []
    texts = ["AANMELDEN", "JA", "OVERSLAAN", "7511 AB 12", "JA", "JA", "SMS", "MIJN GEGEVENS", "HULP", "STOP"]
    per_client = max(1, messages // clients)

    async def person(n: int, http: httpx.AsyncClient) -> None:
        sender = f"+316{20_000_000 + n:08d}"
        for i in range(per_client):
            body = {"channel": "sms", "sender": sender, "text": texts[i % len(texts)]}
            began = time.perf_counter()
            response = await http.post("/simulator/messages", json=body)
            latencies.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(person(n, http) for n in range(clients)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies), len(latencies) / elapsed, statistics.median(latencies), p99


def run(participants: int, db: Path | None, messages: int, clients: int) -> dict[str, float]:
    """Measure the baseline and our server; return the figures."""
    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    db_path = db or workdir / "serve.db"
    url = f"sqlite:///{db_path}"
    key_file = db_path.with_suffix(".key")
    if not key_file.exists():
        key_file.write_text(new_data_key())
    data_key = key_file.read_text().strip()
    fresh = not db_path.exists()
    migrate(url)
    if fresh and participants:
        print(f"seeding {participants:,} participants into {db_path} ...", flush=True)
        seed(url, participants, load_settings().postcode_data, data_key)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    port = free_port()
    bare = start([sys.executable, "-c", BARE_APP, str(port)], env, port)
    bare_rss = bare.rss_mb()
    bare.stop()

    port = free_port()
    ours_env = env | {
        "DATABASE_URL": url,
        "DATA_KEY": data_key,
        "DATA_KEY_FILE": str(workdir / "dev.key"),
        "HTTP_PORT": str(port),
        "ENVIRONMENT": "benchmark",
    }
    ours = start([sys.executable, "run_bot.py", "serve"], ours_env, port)
    try:
        time.sleep(2)  # let the scheduler take the lead and the dispatcher settle
        idle_rss = ours.rss_mb()
        answered, rate, p50, p99 = asyncio.run(chat_load(ours.base_url, messages, clients))
        load_rss = ours.rss_mb()
    finally:
        ours.stop()
    return {
        "participants": participants,
        "baseline_start_s": bare.seconds,
        "baseline_rss_mb": bare_rss,
        "start_s": ours.seconds,
        "start_ratio": ours.seconds / bare.seconds,
        "idle_rss_mb": idle_rss,
        "idle_rss_ratio": idle_rss / bare_rss if bare_rss else 0.0,
        "load_messages": answered,
        "load_clients": clients,
        "load_msg_per_s": rate,
        "load_p50_ms": p50,
        "load_p99_ms": p99,
        "load_rss_mb": load_rss,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure and print a table, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="SQLite file to seed once and reuse")
    parser.add_argument("--messages", type=int, default=2_000, help="simulator messages under load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent simulated people")
    args = parser.parse_args(argv)
    figures = run(args.participants, args.db, args.messages, args.clients)
    print(f"serve with {figures['participants']:,} participants (baseline: bare Starlette under uvicorn)")
    print(
        f"  start-up to /healthz: {figures['start_s']:.2f} s vs {figures['baseline_start_s']:.2f} s"
        f"  (ratio {figures['start_ratio']:.1f})"
    )
    print(
        f"  RSS idle: {figures['idle_rss_mb']:.0f} MB vs {figures['baseline_rss_mb']:.0f} MB"
        f"  (ratio {figures['idle_rss_ratio']:.1f})"
    )
    print(
        f"  under load ({figures['load_messages']:,} simulator messages, {figures['load_clients']} clients):"
        f" {figures['load_msg_per_s']:.0f} msg/s, p50 {figures['load_p50_ms']:.1f} ms,"
        f" p99 {figures['load_p99_ms']:.1f} ms, RSS {figures['load_rss_mb']:.0f} MB"
    )
    print(json.dumps({"bench": "serve", **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
