"""Inbound benchmark: signed Twilio SMS webhooks through a real uvicorn on loopback, mixed conversations.

A child process serves the Twilio webhooks in front of the real inbox, router, flows, built-in NLU and
storage (SQLite in a temporary folder, or `--database-url`), plus a bare Starlette endpoint that only reads
the form and answers the same empty TwiML. This process plays Twilio: 32 concurrent clients post N signed
messages (default 20,000) from many phones, each phone's messages in order: a whole registration, HULP,
MIJN GEGEVENS, a free-text tip, not-understood chatter, STOP. Then the same number of requests to the
bare endpoint with the same clients. Prints messages/s and p50/p99 latency of both, and the ratio.

32 clients that each wait for their answer keep the server saturated, so their latency is mostly the
queue (Little's law: 32 / throughput). Twilio does not wait: it posts each message when it arrives. So the
run also sends, open-loop at `--rate` messages/s (default: 60% of the throughput just measured), the same
mix to both endpoints and prints p50/p99 from each request's scheduled moment (a request that had to wait
for the one before it counts the wait too). Each phone still sends in order, about a second apart.

Replies go through the outbox and the dispatcher to a counting channel in the server (no outbound
HTTP). Last, fresh phones send HULP open-loop at 50/s and the time from each post to its reply reaching
the channel is reported (p50/p99, one server process only).
`--workers N` (PostgreSQL only) serves the same port from N processes, as `serve --workers N` does.

Run: `.venv/bin/python -m bench.inbound_bench` (20,000 messages) or `--messages 2000` for a quick run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from storage.crypto import new_data_key

CLIENTS = 32
AUTH_TOKEN = "be7c" * 8
ACCOUNT_SID = "AC" + "b" * 32
PUBLIC = "https://bot.example.nl"
SMS_PATH = "/webhooks/twilio/sms"
BARE_PATH = "/bare/sms"
OUR_NUMBER = "+3197010254321"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
_SIDS = itertools.count(1)  # unique across runs: a repeated MessageSid is (rightly) taken for a retry
# One phone's conversation; every phone sends it in order (a mix of keywords, flow steps and free text).
CONVERSATION = [
    "START", "JA", "Jan", "7511 AB 12", "JA", "JA", "SMS",
    "HULP", "MIJN GEGEVENS", "ik zag een man met een rode jas bij het station", "hallo", "STOP",
]  # fmt: skip


# ---- the server (a child process) ---------------------------------------------------------------------


def _serve(
    port: int, database_url: str, data_key: str, ready: Any, sent: Any, migrate_first: bool = True
) -> None:
    """Build the app as `serve` does (build_runtime, create_app) and serve it with uvicorn until killed.

    Every channel's sending side is a counting channel (no outbound HTTP). Several of these may serve one
    port (`SO_REUSEPORT`: the kernel spreads the connections), as `serve --workers N` does on PostgreSQL;
    `sent` is a shared counter of the replies of all of them, `data_key` the key they all use.
    """
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from bot.app import create_app
    from bot.asgi import freeze_startup_heap
    from bot.channels.base import SendReceipt
    from bot.config import load_settings
    from bot.messages import OutgoingMessage
    from bot.runtime import build_runtime
    from storage.vocabulary import ChannelKind

    class CountingChannel:
        kinds = frozenset(ChannelKind)

        async def send(self, message: OutgoingMessage) -> SendReceipt:
            reply_times.setdefault(message.recipient, time.time())
            with sent.get_lock():
                sent.value += 1
                number = sent.value
            return SendReceipt(provider_id=f"bench-{number}")

    # When each phone's first reply reached the provider (wall clock, compared with the client's post time).
    reply_times: dict[str, float] = {}
    # No send rate: the counting channel is no provider, and before the outbox replies were not rate limited.
    # Twilio is configured for its webhooks (the signature); its sends go to the counting channel.
    settings = load_settings(
        database_url=database_url,
        data_key=data_key,
        public_base_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        dispatch_rate_limits=False,
        scheduler_enabled=False,
        simulator=False,
    )
    runtime = build_runtime(
        settings, run_migrations=migrate_first, senders=dict.fromkeys(ChannelKind, CountingChannel())
    )
    app = create_app(runtime)

    async def bare(request: Request) -> Response:
        await request.form()
        return Response(EMPTY_TWIML, media_type="application/xml")

    async def replies(_request: Request) -> JSONResponse:
        return JSONResponse({"sent": sent.value})

    async def reply_times_route(_request: Request) -> JSONResponse:
        return JSONResponse(reply_times)

    # Plain Starlette routes: no FastAPI dependency resolution, the floor to compare against.
    app.router.add_route(BARE_PATH, bare, methods=["POST"])
    app.router.add_route("/reply-times", reply_times_route, methods=["GET"])
    app.router.add_route("/replies", replies, methods=["GET"])

    # Keep-alive past the client's longest pause: with uvicorn's 5 s, a connection httpx left idle was
    # sometimes closed by the server just as a request went out on it (httpx.ReadError, not retried).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_keep_alive=120
    )
    server = uvicorn.Server(config)
    freeze_startup_heap()  # as `serve` does
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    ready.set()
    server.run(sockets=[listener])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the load (this process) --------------------------------------------------------------------------


def _requests(messages: int, path: str, prefix: str = "+3165") -> list[list[tuple[bytes, dict[str, str]]]]:
    """Signed requests, one list per phone (numbers from `prefix`), in the order the phone sends them."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    phones = -(-messages // len(CONVERSATION))
    per_phone: list[list[tuple[bytes, dict[str, str]]]] = []
    left = messages
    for n in range(phones):
        phone = f"{prefix}{n:07d}"
        requests = []
        for text in CONVERSATION[: min(left, len(CONVERSATION))]:
            sid = f"SM{next(_SIDS):032x}"
            form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": phone,
                    "To": OUR_NUMBER, "Body": text, "NumMedia": "0", "ApiVersion": "2010-04-01"}  # fmt: skip
            signature = validator.compute_signature(PUBLIC + path, form)
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
            requests.append((urlencode(form).encode(), headers))
        left -= len(requests)
        per_phone.append(requests)
    return per_phone


async def _post(http: httpx.AsyncClient, path: str, content: bytes, headers: dict[str, str]) -> int:
    """The status of one webhook post; 0 when the connection failed (counted, not fatal to the run)."""
    try:
        response = await http.post(path, content=content, headers=headers)
    except httpx.TransportError as exc:
        print(f"  request failed: {type(exc).__name__}", file=sys.stderr)
        return 0
    return response.status_code


async def _load_at_rate(
    base_url: str, path: str, per_phone: list[list[tuple[bytes, dict[str, str]]]], rate: float
) -> dict[str, Any]:
    """Post every request at a steady rate, on its schedule; a phone's next message waits for its last."""
    spacing = max(1, round(rate))  # phones in a group: each sends about once a second
    schedule: list[tuple[int, tuple[bytes, dict[str, str]]]] = []
    for first in range(0, len(per_phone), spacing):
        group = per_phone[first : first + spacing]
        for step in range(max(len(requests) for requests in group)):
            schedule.extend((first + n, r[step]) for n, r in enumerate(group) if step < len(r))
    latencies: list[float] = []
    failures = 0
    previous: dict[int, asyncio.Task[None]] = {}
    limits = httpx.Limits(max_connections=CLIENTS * 8, max_keepalive_connections=CLIENTS * 8)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

        async def post(
            due: float, before: asyncio.Task[None] | None, request: tuple[bytes, dict[str, str]]
        ) -> None:
            nonlocal failures
            if before is not None:
                await before
            content, headers = request
            status = await _post(http, path, content, headers)
            latencies.append(time.perf_counter() - due)
            if status != 200:
                failures += 1

        start = time.perf_counter()
        tasks = []
        for i, (phone, request) in enumerate(schedule):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(post(due, previous.get(phone), request))
            previous[phone] = task
            tasks.append(task)
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {"rate": rate, **_summary(latencies, failures, elapsed)}


async def _load(
    base_url: str, path: str, per_phone: list[list[tuple[bytes, dict[str, str]]]]
) -> dict[str, Any]:
    """Post every request with CLIENTS concurrent clients; each phone's messages one after the other."""
    latencies: list[float] = []
    failures = 0
    phones = iter(per_phone)
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:

        async def client() -> None:
            nonlocal failures
            for requests in phones:
                for content, headers in requests:
                    start = time.perf_counter()
                    status = await _post(http, path, content, headers)
                    latencies.append(time.perf_counter() - start)
                    if status != 200:
                        failures += 1

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed = time.perf_counter() - start
    return _summary(latencies, failures, elapsed)


async def _reply_latency(base_url: str, phones: int, rate: float) -> dict[str, Any]:
    """Fresh phones each send HULP, open-loop at `rate`/s: time from the post to its reply's provider send."""
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(AUTH_TOKEN)
    posted: dict[str, float] = {}
    failures = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:

        async def post(phone: str) -> None:
            nonlocal failures
            params = {
                "From": phone,
                "To": OUR_NUMBER,
                "Body": "HULP",
                "MessageSid": f"SM{next(_SIDS):032x}",
                "AccountSid": ACCOUNT_SID,
            }
            signature = validator.compute_signature(PUBLIC + SMS_PATH, params)
            headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
            posted[phone] = time.time()
            if await _post(http, SMS_PATH, urlencode(params).encode(), headers) != 200:
                failures += 1

        start = time.perf_counter()
        tasks = []
        for n in range(phones):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(f"+3168{n:07d}")))
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # replies sent after the webhook answered
        times = (await http.get("/reply-times")).json()
    latencies = sorted(times[p] - t for p, t in posted.items() if p in times)
    return {
        "phones": phones,
        "rate": rate,
        "replied": len(latencies),
        "failures": failures,
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1) if latencies else None,
    }


def _summary(latencies: list[float], failures: int, elapsed: float) -> dict[str, Any]:
    """Messages, failures, messages/s and p50/p99 latency of one load."""
    latencies = sorted(latencies)
    return {
        "messages": len(latencies),
        "failures": failures,
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }


def run(
    messages: int, database_url: str | None, rate: float | None = None, workers: int = 1
) -> dict[str, Any]:
    """Start the server, load the bare endpoint and the real webhook, stop the server; the figures."""
    if workers > 1 and not (database_url or "").startswith("postgresql"):
        raise ValueError("several workers need PostgreSQL (--database-url), as `serve --workers` does")
    with tempfile.TemporaryDirectory() as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'inbound.db'}"
        port = _free_port()
        ctx = multiprocessing.get_context("spawn")
        sent = ctx.Value("q", 0)
        data_key = new_data_key()
        servers: list[Any] = []
        try:
            for n in range(workers):
                ready = ctx.Event()
                server = ctx.Process(
                    target=_serve, args=(port, url, data_key, ready, sent, n == 0), daemon=True
                )
                server.start()
                servers.append(server)
                if not ready.wait(120):  # the first one migrates before the others start
                    raise RuntimeError("the server did not start")
            pids = [server.pid for server in servers]
            base = f"http://127.0.0.1:{port}"
            _wait_listening(base)
            # A warm-up by other phones (first connections, first queries, the NLU's first call).
            asyncio.run(_load(base, SMS_PATH, _requests(len(CONVERSATION) * CLIENTS, SMS_PATH, "+3164")))
            warm_replies = httpx.get(f"{base}/replies").json()["sent"]
            bare = _measured(pids, base, BARE_PATH, _requests(messages, BARE_PATH))
            real = _measured(pids, base, SMS_PATH, _requests(messages, SMS_PATH))
            steady = rate or round(real["per_s"] * 0.6)
            open_messages = min(messages, int(steady * 30))  # at most 30 s of it
            open_bare = asyncio.run(
                _load_at_rate(base, BARE_PATH, _requests(open_messages, BARE_PATH, "+3166"), steady)
            )
            open_real = asyncio.run(
                _load_at_rate(base, SMS_PATH, _requests(open_messages, SMS_PATH, "+3167"), steady)
            )
            replies = httpx.get(f"{base}/replies").json()["sent"] - warm_replies
            # Each worker keeps its own send times, so this is measured with one server process only.
            reply = asyncio.run(_reply_latency(base, min(messages, 1000), 50.0)) if workers == 1 else None
        finally:
            for server in servers:
                server.kill()
                server.join(10)
    return {
        "database": "postgresql" if url.startswith("postgresql") else "sqlite",
        "workers": workers,
        "clients": CLIENTS,
        "webhook": real,
        "bare": bare,
        "ratio": round(real["per_s"] / bare["per_s"], 2),
        "open_loop": {"webhook": open_real, "bare": open_bare},
        "replies_sent": replies,
        "reply_latency": reply,
    }


def _measured(
    pids: list[int | None], base: str, path: str, per_phone: list[list[tuple[bytes, dict[str, str]]]]
) -> dict[str, Any]:
    """One load, with the server processes' CPU time per request (steadier than msg/s on a busy machine)."""
    before = sum(_cpu_seconds(pid) for pid in pids)
    figures = asyncio.run(_load(base, path, per_phone))
    used = sum(_cpu_seconds(pid) for pid in pids) - before
    figures["server_cpu_us"] = round(used / max(figures["messages"], 1) * 1e6)
    return figures


def _cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process has used so far, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_listening(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/replies", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server does not answer")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print the figures as a table and as JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--database-url", help="an empty database, e.g. PostgreSQL (default: SQLite in tmp)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (PostgreSQL only)")
    parser.add_argument("--rate", type=float, help="open-loop messages/s (default: 60%% of the throughput)")
    parser.add_argument("--json", action="store_true", help="print only JSON")
    args = parser.parse_args(argv)
    figures = run(args.messages, args.database_url, args.rate, args.workers)
    if not args.json:
        real, bare = figures["webhook"], figures["bare"]
        title = (
            f"{real['messages']:,} signed SMS webhooks, {CLIENTS} clients, {figures['database']},"
            f" {args.workers} server process{'es' if args.workers > 1 else ''}"
        )
        print(f"== inbound benchmark: {title}")
        for name, row in (("webhook + router + storage", real), ("bare Starlette endpoint", bare)):
            print(
                f"  {name:<28} {row['per_s']:>9} /s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms"
                f"  server CPU {row['server_cpu_us']} µs each  ({row['failures']} not 200)"
            )
        print(f"  ratio                        {figures['ratio']:>9}   (goal >= 0.5; p99 goal < 50 ms)")
        webhook, floor = figures["open_loop"]["webhook"], figures["open_loop"]["bare"]
        print(
            f"  open loop, {webhook['messages']:,} messages at {webhook['rate']:g}/s (as Twilio posts them):"
        )
        for name, row in (("webhook + router + storage", webhook), ("bare Starlette endpoint", floor)):
            print(
                f"  {name:<28} {row['per_s']:>9} /s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms"
                f"  ({row['failures']} not 200)"
            )
        reply = figures["reply_latency"]
        if reply is not None:
            print(
                f"  reply latency, webhook post -> provider send,"
                f" {reply['phones']} phones at {reply['rate']:g}/s:"
                f"  p50 {reply['p50_ms']} ms  p99 {reply['p99_ms']} ms  ({reply['replied']} replied)"
            )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
