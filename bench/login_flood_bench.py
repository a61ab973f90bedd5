"""Signed Twilio webhooks while 32 clients flood the control-room login with wrong passwords: p50/p99.

Run: `.venv/bin/python -m bench.login_flood_bench [--seconds 15] [--rate 5]`.

The app, as `build_runtime` + `create_app` wire it (bench/tip_bench.py's `build_app`: replies go to a
sender that accepts them), runs in a child process under uvicorn on loopback, on a fresh SQLite database,
with one operator whose password is hashed with the library's default argon2id parameters (what
`create-operator` stores). The parent sends signed Twilio SMS webhooks (a tip for a running action, each
from its own number) at `--rate` per second, open-loop, and times each round trip; `/healthz` likewise.
It does so in four phases, each `--seconds` long:

1. **quiet**: no flood (the baseline of the run).
2. **flood, spread**: 32 connections post wrong passwords for the operator as fast as the server
   answers, each post from a new loopback address (127.x.y.z), so no client throttle applies and every
   post costs an argon2 check. This measures the threads and the semaphore alone.
3. **flood, one address**: the same 32 connections from one address, the usual attack: after a few
   failures the address is throttled and its posts are answered without a check.
4. **flood, spread, in the loop** (the old behaviour, for comparison): a second server in which the
   checks run in the event loop (`PasswordWorkers` made to verify in the calling thread, and no
   throttle), as the control room did before.

Prints p50/p99 per phase, the ratios to the quiet phase and to the old behaviour, and how many login
posts the server answered (401: checked, 429: throttled) per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.tip_bench import (
    Connection,
    bench_settings,
    build_app,
    free_port,
    percentile,
    prepare,
    seed_action,
    utcnow,
)
from storage.crypto import new_data_key
from storage.db import make_engine, migrate, session_factory, transaction

SMS_PATH = "/webhooks/twilio/sms"
LOGIN_PATH = "/controlroom/login"
FLOODERS = 32
OPERATOR = "olga"
PASSWORD = "the operator's real passphrase"
WRONG = "a wrong password, guessed"


def seed_operator(database_url: str, now: datetime) -> None:
    """The operator, hashed with the default argon2id parameters."""
    from storage.models import OperatorRole
    from storage.operators import create_operator

    engine = make_engine(database_url)
    try:
        with transaction(session_factory(engine)) as session:
            create_operator(
                session, username=OPERATOR, password=PASSWORD, role=OperatorRole.OPERATOR, now=now
            )
    finally:
        engine.dispose()


def _checks_in_the_loop() -> None:
    """Make this process check passwords as the control room did before: in the event loop, no throttle."""
    from bot.controlroom.passwords import PasswordWorkers
    from bot.controlroom.throttle import LoginThrottle, Verdict

    async def verify(self: PasswordWorkers, stored: str | None, password: str) -> bool:
        return self.verify_now(stored or "", password)

    async def hash_(self: PasswordWorkers, password: str) -> str:
        return self.hasher.hash(password)

    def allow(self: LoginThrottle, *, client: str, account: str) -> Verdict:
        return Verdict(True)

    PasswordWorkers.verify = verify  # type: ignore[method-assign]
    PasswordWorkers.hash = hash_  # type: ignore[method-assign]
    LoginThrottle.check = allow  # type: ignore[method-assign]


def serve(database_url: str, port: int, data_key: str, in_loop: bool) -> None:
    """The child process: the app as the runtime wires it, on loopback (`in_loop`: the old behaviour)."""
    import logging

    import uvicorn

    from bot.asgi import freeze_startup_heap

    logging.basicConfig(level=logging.WARNING)
    if in_loop:
        _checks_in_the_loop()
    app, _ = build_app(bench_settings(database_url, port, data_key))
    freeze_startup_heap()
    # The flood connects from many addresses of 127.0.0.0/8 (all loopback) to this one.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _addresses() -> itertools.cycle[str]:
    return itertools.cycle(
        f"127.{a}.{b}.{c}" for a in range(1, 40) for b in range(256) for c in range(1, 255)
    )


async def _flood(port: int, stop: asyncio.Event, spread: bool, answers: dict[int, int]) -> None:
    """32 connections posting wrong passwords back to back; a new source address per post when `spread`."""
    token = "x" * 43  # double submit: the form's token equals the pre-login cookie, whatever its value
    body = urlencode({"username": OPERATOR, "password": WRONG, "csrf_token": token}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"cr_pre={token}"}
    sources = _addresses()

    async def one_client() -> None:
        connection: Connection | None = None
        while not stop.is_set():
            if connection is None or spread:
                if connection is not None:
                    connection.close()
                local = (next(sources), 0) if spread else None
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
                connection = Connection(reader, writer, f"127.0.0.1:{port}")
            try:
                status = await connection.post(LOGIN_PATH, body, headers)
            except (ConnectionError, asyncio.IncompleteReadError):
                connection = None
                continue
            answers[status] = answers.get(status, 0) + 1
        if connection is not None:
            connection.close()

    await asyncio.gather(*(one_client() for _ in range(FLOODERS)))


async def _probe(port: int, requests: list[Any], rate: float) -> tuple[list[float], list[float]]:
    """Webhooks and /healthz, open-loop at `rate` each; round trips in ms (waits for a connection count)."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await Connection.open("127.0.0.1", port))
    webhooks: list[float] = []
    health: list[float] = []

    async def post(item: Any) -> None:
        start = time.perf_counter()
        connection = await pool.get()
        try:
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": item.signature,
            }
            status = await connection.post(SMS_PATH, item.body, headers)
        finally:
            pool.put_nowait(connection)
        if status != 200:
            print(f"  webhook answered {status}", file=sys.stderr)
        webhooks.append((time.perf_counter() - start) * 1000)

    async def healthz() -> None:
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        await reader.read()
        writer.close()
        health.append((time.perf_counter() - start) * 1000)

    begin = time.perf_counter()
    tasks = []
    for i, item in enumerate(requests):
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(item)))
        tasks.append(asyncio.create_task(healthz()))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()
    return webhooks, health


async def phase(port: int, requests: list[Any], rate: float, flood: str | None) -> dict[str, Any]:
    """One phase: probes at `rate`, with a flood (`spread` or `one`) or none; its figures."""
    stop = asyncio.Event()
    answers: dict[int, int] = {}
    flooding = None
    if flood is not None:
        flooding = asyncio.create_task(_flood(port, stop, flood == "spread", answers))
        await asyncio.sleep(1.0)  # the flood is under way before the first probe
    start = time.perf_counter()
    webhooks, health = await _probe(port, requests, rate)
    elapsed = time.perf_counter() - start
    stop.set()
    if flooding is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(flooding, 60)
    return {
        "webhook_p50_ms": round(statistics.median(webhooks), 1),
        "webhook_p99_ms": round(percentile(webhooks, 99), 1),
        "healthz_p50_ms": round(statistics.median(health), 1),
        "healthz_p99_ms": round(percentile(health, 99), 1),
        "probes": len(webhooks),
        "logins_checked_per_s": round(answers.get(401, 0) / elapsed, 1),
        "logins_throttled_per_s": round(answers.get(429, 0) / elapsed, 1),
        "login_answers": {str(k): v for k, v in sorted(answers.items())},
    }


def run_server(
    url: str, code: str, rate: float, seconds: float, in_loop: bool, floods: list[str | None], first: int
) -> dict[str, Any]:
    """Start a server, run the phases against it, stop it; phase k sends the tips of batch `first + k`."""
    port = free_port()
    child = multiprocessing.get_context("spawn").Process(
        target=serve, args=(url, port, new_data_key(), in_loop)
    )
    child.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        from bench.tip_bench import _wait_ready

        _wait_ready(base_url, child)
        count = max(10, int(rate * seconds))
        out = {}
        for n, flood in enumerate(floods, start=first):
            # A batch of its own per phase: a repeated MessageSid would be (rightly) taken for a retry.
            requests = prepare(count * (n + 1), code, base_url, SMS_PATH)[count * n :]
            out[flood or "quiet"] = asyncio.run(phase(port, requests, rate, flood))
        return out
    finally:
        child.terminate()
        child.join(10)


def run(rate: float, seconds: float) -> dict[str, Any]:
    """The four phases on a fresh database; their figures."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        now = utcnow()
        code = seed_action(url, now)
        seed_operator(url, now)
        new = run_server(url, code, rate, seconds, False, [None, "spread", "one"], first=0)
        old = run_server(url, code, rate, seconds, True, ["spread"], first=3)
    return {
        "rate": rate,
        "seconds": seconds,
        "quiet": new["quiet"],
        "flood_spread": new["spread"],
        "flood_one_address": new["one"],
        "flood_spread_in_loop": old["spread"],
    }


def main(argv: list[str] | None = None) -> int:
    """Print the figures of the four phases and their ratios."""
    args_parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    args_parser.add_argument("--rate", type=float, default=5.0, help="webhooks (and /healthz) per second")
    args_parser.add_argument("--seconds", type=float, default=15.0, help="how long each phase probes")
    args = args_parser.parse_args(argv)
    _print(run(args.rate, args.seconds))
    return 0


def _print(f: dict[str, Any]) -> None:
    quiet = f["quiet"]
    print(
        f"login flood: signed Twilio webhooks at {f['rate']:.0f}/s, {FLOODERS} parallel bad logins (SQLite)"
    )
    print(f"{'':34}{'webhook p50':>12}{'p99':>9}{'healthz p50':>13}{'p99':>9}{'x quiet p50/p99':>17}", end="")
    print(f"{'logins/s':>14}")
    for key, label in (
        ("quiet", "no flood (baseline)"),
        ("flood_spread", "flood, every post a new address"),
        ("flood_one_address", "flood from one address"),
        ("flood_spread_in_loop", "flood, argon2 in the loop (old)"),
    ):
        p = f[key]
        p50 = p["webhook_p50_ms"] / quiet["webhook_p50_ms"]
        ratio = f"{p50:.1f} / {p['webhook_p99_ms'] / quiet['webhook_p99_ms']:.1f}"
        logins = f"{p['logins_checked_per_s']:.0f}+{p['logins_throttled_per_s']:.0f}"
        print(
            f"{label:34}{p['webhook_p50_ms']:12.1f}{p['webhook_p99_ms']:9.1f}"
            f"{p['healthz_p50_ms']:13.1f}{p['healthz_p99_ms']:9.1f}{ratio:>17}{logins:>14}"
        )
    old, spread = f["flood_spread_in_loop"], f["flood_spread"]
    p50 = old["webhook_p50_ms"] / spread["webhook_p50_ms"]
    print(f"old / new under the same flood: webhook p50 {p50:.1f}x, ", end="")
    print(f"p99 {old['webhook_p99_ms'] / spread['webhook_p99_ms']:.1f}x")
    print("(logins/s: checked (401) + throttled (429) answers to the flood per second)")
    print(json.dumps(f))


if __name__ == "__main__":
    sys.exit(main())
