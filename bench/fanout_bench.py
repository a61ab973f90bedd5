"""Fan-out benchmark: recipient selection, outbox write and dispatch throughput of one action.

Seeds N participants over the real Dutch PC4 postcodes (bulk insert), launches an action with a 5 km
circle in the centre of Amsterdam and measures:
  * recipient selection time (median of several runs; goal < 100 ms on SQLite at 1M participants),
  * the outbox write (one bulk insert in the launch transaction),
  * dispatch throughput to a local fake HTTP provider with rate limits off, as a ratio to a plain httpx
    client posting the same number of requests to the same fake in the same run (goal >= 0.8),
  * with rate limits on, the rate each channel achieved against its configured rate (goal >= 95%),
  * the peak RSS of this (measuring) process; seeding runs in a child process so it does not count.

With `--workers N` (PostgreSQL only) the throughput pairs are also run with 1 and with N dispatcher
processes on the same outbox (each its own engine, client and worker id), next to 1 and N plain httpx
processes posting the same total; every delivery must reach the fake exactly once, or the run exits 1.

Run: `.venv/bin/python -m bench.fanout_bench --participants 10000` (CI) or `--participants 1000000`
(by hand; seeding 1M takes a few minutes, `--db PATH` keeps the database for the next run).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import multiprocessing
import os
import queue
import random
import resource
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import bindparam, func, insert, select, update

from bot.alerts import AlertTexts
from bot.channels.base import RetryableSendError, SendReceipt
from bot.config import Settings, load_settings
from bot.dispatch import Dispatcher
from bot.messages import OutgoingMessage
from bot.texts import Catalogue
from storage.actions import ActionDraft, Target, close_action, create_action, launch_action
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, make_engine, migrate, session_factory, transaction
from storage.deliveries import DELIVERY, IDENTITY
from storage.models import (
    Action,
    ActionOutcome,
    ActionType,
    Address,
    ChannelIdentity,
    Participant,
    ParticipantStatus,
)
from storage.reach import rebuild_reach
from storage.targeting import Circle, parse_area, select_recipients
from storage.vocabulary import ChannelKind, DeliveryStatus

AMSTERDAM = (52.3731, 4.8926)  # Dam square
NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)  # a Friday afternoon: work-time windows are open
CHANNEL_MIX = (
    (ChannelKind.TELEGRAM, 0.45),
    (ChannelKind.WHATSAPP, 0.30),
    (ChannelKind.SMS, 0.20),
    (ChannelKind.VOICE, 0.05),
)
CHUNK = 20_000
CONCURRENCY = 8  # httpx's pool slows down past a few dozen connections; both sides use the same


# ---- the fake provider (a separate process) ----------------------------------------------------------


def _serve_fake(port_queue: Any, count_recipients: bool = False) -> None:
    """A minimal keep-alive HTTP/1.1 server: answers every POST with a JSON id and records arrival times.

    With `count_recipients`, it also counts the arrivals per recipient (`to` of the body) on the channel
    paths, for the exactly-once check of the multi-worker run (`GET /recipients`); off by default, so the
    single-worker run's fake does no more work than it always did.
    """

    arrivals: dict[str, list[float]] = {}
    recipients: Counter[str] = Counter()
    channel_paths = {f"/{kind.value}" for kind in ChannelKind}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                length = 0
                for line in lines:
                    if line[:15].lower() == "content-length:":
                        length = int(line[15:].strip())
                payload = await reader.readexactly(length) if length else b""
                if method == "GET" and path == "/stats":
                    body = json.dumps(arrivals).encode()
                elif method == "GET" and path == "/recipients":
                    body = json.dumps(recipients).encode()
                elif method == "POST" and path == "/reset":
                    arrivals.clear()
                    recipients.clear()
                    body = b"{}"
                else:
                    if count_recipients and path in channel_paths:
                        recipients[json.loads(payload)["to"]] += 1
                    stamps = arrivals.setdefault(path, [])
                    stamps.append(time.monotonic())
                    body = b'{"id":"F%d"}' % len(stamps)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(body), body)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class HttpChannel:
    """A channel that posts each message as JSON to the fake provider, one path per channel kind."""

    kinds = frozenset(ChannelKind)

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Post the message; a non-200 answer is a retryable error."""
        response = await self._client.post(
            f"/{message.channel.value}", json={"to": message.recipient, "body": message.text}
        )
        if response.status_code != 200:
            raise RetryableSendError(f"HTTP {response.status_code}", code=str(response.status_code))
        return SendReceipt(provider_id=response.json()["id"], segments=1)


def _client(base_url: str, connections: int = CONCURRENCY) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30)


# ---- seeding (a child process) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pc4:
    """One PC4 area of the postcode table."""

    pc4: str
    lat: float
    lon: float
    place: str
    municipality_code: str
    municipality_name: str


def load_pc4(path: Path) -> list[Pc4]:
    """The PC4 table (`pc4,lat,lon,plaatsen,gemeentecode,gemeentenaam,...`)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Pc4(
                row["pc4"],
                float(row["lat"]),
                float(row["lon"]),
                row["plaatsen"].split("|")[0],
                row["gemeentecode"],
                row["gemeentenaam"],
            )
            for row in csv.DictReader(handle)
        ]


def seed(url: str, participants: int, postcode_data: Path, data_key: str, rng_seed: int = 4) -> None:
    """Bulk-insert participants with one home address on a random PC4 (some with a second, windowed
    address) and one or two channel identities each."""
    rng = random.Random(rng_seed)
    places = load_pc4(postcode_data)
    vault = DataVault(data_key)
    kinds = [k for k, _ in CHANNEL_MIX]
    weights = [w for _, w in CHANNEL_MIX]
    # A pool of encrypted addresses: Fernet per row would dominate seeding and the fake ignores them.
    pool = {
        k: [
            vault.encrypt(f"+3161{n:07d}" if k is not ChannelKind.TELEGRAM else str(10_000 + n))
            for n in range(64)
        ]
        for k in kinds
    }
    engine = make_engine(url)
    p_table, i_table, a_table = (m.__table__ for m in (Participant, ChannelIdentity, Address))  # type: ignore[union-attr]
    identity_id = 0
    with engine.begin() as conn:
        for start in range(0, participants, CHUNK):
            people, identities, addresses = [], [], []
            for pid in range(start + 1, min(participants, start + CHUNK) + 1):
                preferred = rng.choices(kinds, weights)[0]
                people.append(
                    {
                        "id": pid,
                        "status": ParticipantStatus.ACTIVE.value,
                        "language": "nl" if rng.random() < 0.9 else "en",
                        "preferred_channel": preferred.value,
                        "created_at": NOW,
                        "confirmed_at": NOW,
                    }
                )
                channels = [preferred]
                if rng.random() < 0.2:
                    channels.append(
                        ChannelKind.SMS if preferred is not ChannelKind.SMS else ChannelKind.TELEGRAM
                    )
                for channel in channels:
                    identity_id += 1
                    identities.append(
                        {
                            "id": identity_id,
                            "participant_id": pid,
                            "channel": channel.value,
                            "address_hash": f"h{identity_id}",
                            "address_enc": rng.choice(pool[channel]),
                            "language": "nl",
                            "opted_out": rng.random() < 0.01,
                            "created_at": NOW,
                        }
                    )
                homes = [rng.choice(places)]
                if rng.random() < 0.1:
                    homes.append(rng.choice(places))
                for slot, place in enumerate(homes, start=1):
                    addresses.append(
                        {
                            "participant_id": pid,
                            "slot": slot,
                            "postcode": f"{place.pc4} AB",
                            "house_number": rng.randint(1, 200),
                            "lat": place.lat,
                            "lon": place.lon,
                            "municipality_code": place.municipality_code,
                            "municipality_name": place.municipality_name,
                            "place": place.place,
                            "window_days": "12345" if slot == 2 else None,
                            "window_start": dtime(9) if slot == 2 else None,
                            "window_end": dtime(17) if slot == 2 else None,
                        }
                    )
            conn.execute(insert(p_table), people)
            conn.execute(insert(i_table), identities)
            conn.execute(insert(a_table), addresses)
    with engine.begin() as conn:
        # The bulk insert went around the store functions: derive the reach table as a backfill would.
        rebuild_reach(conn)
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()


# ---- measuring ----------------------------------------------------------------------------------------


def star_ring(centre: tuple[float, float], corners: int, inner_m: float, outer_m: float) -> list[list[float]]:
    """A closed CAP ring (lat, lon) of `corners` points, `outer_m` and `inner_m` from the centre in turn."""
    ring = []
    for i in range(corners):
        bearing = 2 * math.pi * i / corners
        metres = outer_m if i % 2 == 0 else inner_m
        dlat = metres * math.cos(bearing) / 111_195
        dlon = metres * math.sin(bearing) / (111_195 * math.cos(math.radians(centre[0])))
        ring.append([round(centre[0] + dlat, 6), round(centre[1] + dlon, 6)])
    return [*ring, ring[0]]


def _rss_mb() -> tuple[float, float]:
    """Current and peak resident set size of this process, in MB."""
    current = peak = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    if not peak:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return current, peak


def _new_action(sessions: SessionFactory, radius_m: float, headline: str) -> Action:
    with transaction(sessions) as session:
        return create_action(
            session,
            draft=ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline=headline,
                description="Benchmark: man (40), grijze jas, loopt verward richting het station.",
                instruction="Bel 112 als u hem ziet.",
                area={"circle": {"lat": AMSTERDAM[0], "lon": AMSTERDAM[1], "radius_m": radius_m}},
                expires_at=NOW + timedelta(hours=2),
            ),
            now=NOW,
            created_by="bench",
        )


def _targets(recipients: Sequence[Any]) -> list[Target]:
    return [
        Target(r.participant_id, r.first.identity_id, r.first.channel, r.language, r.distance_m)
        for r in recipients
    ]


def _identity_targets(session: Any, kind: ChannelKind, limit: int) -> list[Target]:
    """The first `limit` reachable identities on one channel, as targets."""
    i = ChannelIdentity.__table__.c  # type: ignore[attr-defined]
    rows = session.execute(
        select(i.participant_id, i.id)
        .where(i.channel == kind.value, i.opted_out.is_(False))
        .order_by(i.id)
        .limit(limit)
    ).all()
    return [Target(pid, iid, kind, "nl") for pid, iid in rows]


def _dispatcher(
    sessions: SessionFactory,
    settings: Settings,
    client: httpx.AsyncClient,
    data_key: str,
    worker_id: str = "bench",
) -> Dispatcher:
    channel = HttpChannel(client)
    return Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        lambda: NOW,
        settings,
        worker_id,
        vault=DataVault(data_key),
        texts=AlertTexts(Catalogue.load()),
    )


def _throughput_settings() -> Settings:
    """Rate limits off and as many senders as the plain client has connections."""
    return load_settings(
        dispatch_rate_limits=False, dispatch_concurrency=CONCURRENCY, whatsapp_template_default="HXbench"
    )


async def _baseline(client: httpx.AsyncClient, count: int) -> float:
    """Seconds a plain httpx client takes to post `count` requests with the same concurrency."""
    body = {"to": "+31612345678", "body": "x" * 300}
    todo = iter(range(count))

    async def worker() -> None:
        for _ in todo:
            response = await client.post("/baseline", json=body)
            response.json()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - start


async def _measure_dispatch(
    sessions: SessionFactory,
    base_url: str,
    data_key: str,
    messages: int,
    rate_seconds: float,
    repeat: int = 3,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    # Throughput with rate limits off, on one channel so that the dispatcher has exactly as many senders
    # (and connections) as the plain client: `messages` Telegram identities.
    action = _new_action(sessions, 300_000, "Doorvoer")
    with transaction(sessions) as session:
        targets = _identity_targets(session, ChannelKind.TELEGRAM, messages)
        stored = session.get(Action, action.id)
        assert stored is not None
        count = launch_action(session, action=stored, targets=targets, now=NOW)
    settings = _throughput_settings()
    # Pairs of runs, dispatcher then plain client, each pair on a fresh action of `messages` deliveries:
    # the load of the other processes on the machine drifts within seconds, so one pair says little;
    # the median ratio of the pairs is reported, with the range. CPU time per message of this process
    # is measured too: it does not depend on how busy the other processes keep the cores.
    pairs = []
    async with _client(base_url) as client:
        await _baseline(client, min(500, messages))  # warm both the fake and the connection pool
        for n in range(repeat):
            if n:
                action = _new_action(sessions, 300_000, f"Doorvoer {n + 1}")
                with transaction(sessions) as session:
                    stored = session.get(Action, action.id)
                    assert stored is not None
                    count = launch_action(session, action=stored, targets=targets, now=NOW)
            dispatcher = _dispatcher(sessions, settings, client, data_key)
            start, cpu = time.perf_counter(), time.process_time()
            report = await dispatcher.drain()
            dispatch_s, dispatch_cpu = time.perf_counter() - start, time.process_time() - cpu
            assert report.sent >= count
            start, cpu = time.perf_counter(), time.process_time()
            baseline_s = await _baseline(client, report.sent)
            baseline_cpu = time.process_time() - cpu
            pairs.append((report.sent, dispatch_s, baseline_s, dispatch_cpu, baseline_cpu))
    ratios = sorted(b / d for _, d, b, _, _ in pairs)
    sent, dispatch_s, baseline_s, dispatch_cpu, baseline_cpu = pairs[0]
    figures["dispatch_messages"] = sent
    figures["dispatch_pairs"] = len(pairs)
    figures["dispatch_per_s"] = round(statistics.median(n / d for n, d, _, _, _ in pairs))
    figures["baseline_per_s"] = round(statistics.median(n / b for n, _, b, _, _ in pairs))
    figures["dispatch_ratio"] = round(statistics.median(ratios), 2)
    figures["dispatch_ratio_range"] = [round(ratios[0], 2), round(ratios[-1], 2)]
    figures["dispatch_cpu_us"] = round(statistics.median(c / n * 1e6 for n, _, _, c, _ in pairs))
    figures["baseline_cpu_us"] = round(statistics.median(c / n * 1e6 for n, _, _, _, c in pairs))
    figures["dispatch_cpu_ratio"] = round(statistics.median(bc / dc for _, _, _, dc, bc in pairs), 2)

    # With rate limits on: enough messages per channel for `rate_seconds` at its configured rate.
    limited = load_settings(
        dispatch_rate_limits=True, dispatch_concurrency=64, whatsapp_template_default="HXbench"
    )
    per_channel = {kind: max(3, int(rate_for(limited, kind) * rate_seconds) + 1) for kind in ChannelKind}
    action = _new_action(sessions, 300_000, "Tempo")
    with transaction(sessions) as session:
        targets = [t for kind, n in per_channel.items() for t in _identity_targets(session, kind, n)]
        # One delivery per person and action: someone with two identities counts for one channel only.
        seen: set[int | None] = set()
        unique = []
        for target in targets:
            if target.participant_id not in seen:
                seen.add(target.participant_id)
                unique.append(target)
        stored = session.get(Action, action.id)
        assert stored is not None
        launch_action(session, action=stored, targets=unique, now=NOW)
    async with _client(base_url, 32) as client:
        # Open the pool's connections first, as a long-running worker has them: otherwise the first
        # message of a lane waits for a connect and the first-to-last rate reads high on a busy machine.
        await asyncio.gather(*(client.post("/warm") for _ in range(32)))
        await client.post("/reset")
        await _dispatcher(sessions, limited, client, data_key).drain()
        arrivals = (await client.get("/stats")).json()
    rates = {}
    for kind in ChannelKind:
        stamps = sorted(arrivals.get(f"/{kind.value}", []))
        configured = rate_for(limited, kind)
        if len(stamps) >= 2 and configured:
            achieved = (len(stamps) - 1) / (stamps[-1] - stamps[0])
            rates[kind.value] = {
                "configured_per_s": configured,
                "achieved_per_s": round(achieved, 2),
                "ratio": round(achieved / configured, 3),
                "messages": len(stamps),
            }
    figures["rate_limited"] = rates
    return figures


def rate_for(settings: Settings, kind: ChannelKind) -> float:
    """The configured rate of a channel."""
    from bot.dispatch import rate_for as configured

    return configured(settings, kind)


# ---- several dispatcher processes on one PostgreSQL outbox (`--workers N`) ---------------------------

# A unique address per throughput identity: the fake tells the deliveries apart by it (the seeded pool of
# 64 addresses would not); Telegram chat ids are numbers, so these are too.
UNIQUE_ADDRESS_BASE = 700_000_000


def _unique_address(identity_id: int) -> str:
    return str(UNIQUE_ADDRESS_BASE + identity_id)


def _worker_main(
    index: int, url: str, data_key: str, base_url: str, warm: int, commands: Any, results: Any, start: Any
) -> None:
    """One worker process: its own engine, sessions and client; runs the rounds the parent sends."""
    try:
        asyncio.run(_worker_rounds(index, url, data_key, base_url, warm, commands, results, start))
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
        raise


async def _worker_rounds(
    index: int, url: str, data_key: str, base_url: str, warm: int, commands: Any, results: Any, start: Any
) -> None:
    loop = asyncio.get_running_loop()
    engine = make_engine(url)
    sessions = session_factory(engine)
    settings = _throughput_settings()
    name = f"bench-worker-{index + 1}"
    try:
        # The client lives as long as the process (its connections belong to this event loop), and is
        # used by both sides of a pair, as in the single-process run.
        async with _client(base_url) as client:
            await _baseline(client, warm)
            with sessions() as session:
                session.execute(select(DELIVERY.c.id).limit(1)).all()  # open the pool's first connection
            results.put(("up", index))
            while True:
                command = await loop.run_in_executor(None, commands.get)
                if command[0] == "stop":
                    return
                kind, count = command
                dispatcher = (
                    _dispatcher(sessions, settings, client, data_key, name) if kind == "drain" else None
                )
                results.put(("ready", index))
                await loop.run_in_executor(None, start.wait)
                cpu = time.process_time()
                if dispatcher is not None:
                    done = (await dispatcher.drain()).sent
                else:
                    await _baseline(client, count)
                    done = count
                # time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine.
                results.put(("done", index, done, time.monotonic(), time.process_time() - cpu))
    finally:
        engine.dispose()


def _process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[int, int]:
    """Busy and total jiffies of all cores so far (first line of /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle and iowait
    return sum(values) - idle, sum(values)


@dataclass(frozen=True)
class Round:
    """One timed round of k processes: wall time from the start signal to the last one done."""

    wall_s: float
    done: list[int]
    cpu_s: float
    fake_cpu_s: float
    machine_busy: float  # share of all cores busy during the round, whoever used them
    rest_cores: float  # cores busy with neither the workers nor the fake: PostgreSQL, other processes


class WorkerPool:
    """N long-lived worker processes (spawn) that start each round together on one shared signal."""

    def __init__(self, count: int, url: str, data_key: str, base_url: str, warm: int, fake_pid: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._fake_pid = fake_pid
        self._results: Any = ctx.Queue()
        self._start: Any = ctx.Event()
        self._commands: list[Any] = [ctx.Queue() for _ in range(count)]
        self._procs = [
            ctx.Process(
                target=_worker_main,
                args=(n, url, data_key, base_url, warm, self._commands[n], self._results, self._start),
                daemon=True,
            )
            for n in range(count)
        ]
        for proc in self._procs:
            proc.start()
        self._collect("up", count)

    def _collect(self, tag: str, count: int) -> list[tuple[Any, ...]]:
        got: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + 300
        while len(got) < count:
            try:
                message = self._results.get(timeout=1)
            except queue.Empty:
                # A worker that died without a word (killed, out of memory) must not leave us waiting.
                dead = [n + 1 for n, proc in enumerate(self._procs) if proc.exitcode is not None]
                if dead or time.monotonic() > deadline:
                    raise SystemExit(
                        f"worker process(es) {dead or 'all'} stopped answering ({tag})"
                    ) from None
                continue
            if message[0] == "error":
                raise SystemExit(f"worker {message[1] + 1} failed:\n{message[2]}")
            assert message[0] == tag, message
            got.append(message)
        return sorted(got, key=lambda m: m[1])

    def round(self, kind: str, shares: Sequence[int], first: int = 0) -> Round:
        """Run `drain` (shares unused) or `plain` (shares[n] requests each) on len(shares) workers."""
        for n, share in enumerate(shares, start=first):
            self._commands[n].put((kind, share))
        self._collect("ready", len(shares))
        fake_cpu, machine, sampled = _process_cpu_s(self._fake_pid), _machine_cpu(), time.monotonic()
        start = time.monotonic()
        self._start.set()
        done = self._collect("done", len(shares))
        # Every worker of this round is past its wait: the signal can be taken back for the next round.
        self._start.clear()
        busy, total = (now - before for now, before in zip(_machine_cpu(), machine, strict=True))
        fake_cpu = _process_cpu_s(self._fake_pid) - fake_cpu
        cpu = sum(m[4] for m in done)
        # The share of the machine left to our own processes says how far a scaling figure can be read.
        rest = busy / os.sysconf("SC_CLK_TCK") - cpu - fake_cpu
        return Round(
            wall_s=max(m[3] for m in done) - start,
            done=[m[2] for m in done],
            cpu_s=cpu,
            fake_cpu_s=fake_cpu,
            machine_busy=busy / total if total else 0.0,
            rest_cores=max(0.0, rest) / (time.monotonic() - sampled),
        )

    def close(self) -> None:
        """Stop the workers (terminate whichever does not stop in time)."""
        for commands in self._commands:
            commands.put(("stop", 0))
        for proc in self._procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
                proc.join()


def exactly_once(expected: Sequence[str], arrivals: dict[str, int]) -> dict[str, int]:
    """Compare the recipients of an action's deliveries with the fake's arrivals per recipient."""
    wanted = set(expected)
    return {
        "deliveries": len(expected),
        "duplicates": sum(arrivals.get(to, 0) - 1 for to in wanted if arrivals.get(to, 0) > 1),
        "missing": sum(1 for to in wanted if not arrivals.get(to)),
        "other": sum(n for to, n in arrivals.items() if to not in wanted),
    }


def _launch(sessions: SessionFactory, targets: Sequence[Target], headline: str) -> tuple[int, list[str]]:
    """A fresh action on `targets`; returns its id and the recipients of its deliveries."""
    action = _new_action(sessions, 300_000, headline)
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        launch_action(session, action=stored, targets=targets, now=NOW)
        d = DELIVERY.c
        identities = session.scalars(select(d.identity_id).where(d.action_id == action.id)).all()
    assert action.id is not None
    return action.id, [_unique_address(iid) for iid in identities if iid is not None]


def _unsent(sessions: SessionFactory, action_id: int) -> int:
    d = DELIVERY.c
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(DELIVERY)
                .where(d.action_id == action_id, d.status != DeliveryStatus.SENT.value)
            )
            or 0
        )


def _shares(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


def _summary(pairs: Sequence[tuple[int, Round, Round]]) -> dict[str, Any]:
    """Medians over the pairs of one worker count (same figures as the single-process run)."""
    ratios = sorted(b.wall_s / d.wall_s for _, d, b in pairs)
    return {
        "messages": pairs[0][0],
        "pairs": len(pairs),
        "dispatch_per_s": round(statistics.median(n / d.wall_s for n, d, _ in pairs)),
        "baseline_per_s": round(statistics.median(n / b.wall_s for n, _, b in pairs)),
        "ratio": round(statistics.median(ratios), 2),
        "ratio_range": [round(ratios[0], 2), round(ratios[-1], 2)],
        "dispatch_cpu_us": round(statistics.median(d.cpu_s / n * 1e6 for n, d, _ in pairs)),
        "baseline_cpu_us": round(statistics.median(b.cpu_s / n * 1e6 for n, _, b in pairs)),
        "fake_cpu_us_dispatch": round(statistics.median(d.fake_cpu_s / n * 1e6 for n, d, _ in pairs)),
        "fake_cpu_us_baseline": round(statistics.median(b.fake_cpu_s / n * 1e6 for n, _, b in pairs)),
        "machine_busy_pct": round(statistics.median(d.machine_busy for _, d, _ in pairs) * 100),
        "baseline_machine_busy_pct": round(statistics.median(b.machine_busy for _, _, b in pairs) * 100),
        "rest_cores": round(statistics.median(d.rest_cores for _, d, _ in pairs), 2),
        "baseline_rest_cores": round(statistics.median(b.rest_cores for _, _, b in pairs), 2),
        "sent_by_worker": [d.done for _, d, _ in pairs],
    }


def _measure_workers(
    sessions: SessionFactory,
    url: str,
    base_url: str,
    fake_pid: int,
    data_key: str,
    messages: int,
    workers: int,
    repeat: int,
) -> dict[str, Any]:
    """Throughput pairs with 1 and with `workers` dispatcher processes on one outbox, and the exactly-once
    check of every delivery they sent."""
    with transaction(sessions) as session:
        targets = _identity_targets(session, ChannelKind.TELEGRAM, messages)
    vault = DataVault(data_key)
    i = IDENTITY.c
    with sessions() as session:
        # Core, not the ORM: no flush hook runs, and the address is not part of the reach table anyway.
        session.connection().execute(
            update(IDENTITY).where(i.id == bindparam("b_id")).values(address_enc=bindparam("b_enc")),
            [
                {"b_id": t.identity_id, "b_enc": vault.encrypt(_unique_address(t.identity_id or 0))}
                for t in targets
            ],
        )
        session.commit()
    check = {"rounds": 0, "deliveries": 0, "duplicates": 0, "missing": 0, "other": 0, "unsent": 0}
    pool = WorkerPool(workers, url, data_key, base_url, min(500, messages), fake_pid)

    def drain(k: int, headline: str, chosen: Sequence[Target], first: int = 0) -> tuple[int, Round]:
        action_id, expected = _launch(sessions, chosen, headline)
        httpx.post(f"{base_url}/reset")
        result = pool.round("drain", [0] * k, first)
        found = exactly_once(expected, httpx.get(f"{base_url}/recipients").json())
        for key, value in found.items():
            check[key] += value
        # A retry, a fallback or a lost result leaves the row unsent: the check counts it too.
        check["unsent"] += _unsent(sessions, action_id)
        check["rounds"] += 1
        return sum(result.done), result

    try:
        # Warm-up (checked, not timed): each process compiles its statements and fills its caches once,
        # alone, since one claim batch would take every row of a small action shared by all.
        for n in range(workers):
            drain(1, f"Doorvoer opwarmen {n + 1}", targets[:100], first=n)
        pairs: dict[int, list[tuple[int, Round, Round]]] = {1: [], workers: []}
        for n in range(repeat):
            # Alternate the order, so that a drift of the machine's load does not favour one side.
            for k in (1, workers) if n % 2 == 0 else (workers, 1):
                sent, dispatched = drain(k, f"Doorvoer {k} processen {n + 1}", targets)
                plain = pool.round("plain", _shares(sent, k))
                pairs[k].append((sent, dispatched, plain))
    finally:
        pool.close()
    one, many = _summary(pairs[1]), _summary(pairs[workers])
    ok = not (check["duplicates"] or check["missing"] or check["unsent"])
    return {
        "workers": workers,
        "cores": os.cpu_count(),
        "by_workers": {"1": one, str(workers): many},
        "scaling": round(many["dispatch_per_s"] / one["dispatch_per_s"], 2),
        "baseline_scaling": round(many["baseline_per_s"] / one["baseline_per_s"], 2),
        "exactly_once": {**check, "ok": ok},
    }


def run(
    participants: int,
    db: Path | None,
    messages: int,
    rate_seconds: float,
    database_url: str | None,
    repeat: int = 3,
    key_file: Path | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Seed (unless the database is there already), then measure; returns the figures."""
    if workers < 1:
        raise SystemExit("--workers must be at least 1")
    if workers > 1 and not (database_url or "").startswith("postgresql"):
        # SQLite has one outbox owner: its claims take no row locks, and a starting worker takes back
        # every claim (see bot/dispatch.py), so several workers there would not measure anything real.
        raise SystemExit(
            f"--workers {workers} needs PostgreSQL (--database-url postgresql+psycopg://...); "
            "SQLite runs one dispatcher only"
        )
    settings = load_settings()
    data_key = new_data_key()
    keyfile = key_file
    workdir = tempfile.TemporaryDirectory(prefix="fanout-bench-")
    if database_url:
        url = database_url
    else:
        path = db or Path(workdir.name) / f"fanout-{participants}.db"
        url = f"sqlite:///{path}"
        keyfile = keyfile or path.with_suffix(".key")
    if keyfile is not None and keyfile.exists():
        data_key = keyfile.read_text().strip()
    figures: dict[str, Any] = {"participants": participants, "database": url.split("://")[0]}
    engine = make_engine(url)
    sessions = session_factory(engine)
    migrate(url)
    with sessions() as session:
        have = session.scalar(select(func.count()).select_from(Participant))
    if have != participants:
        if have:
            raise SystemExit(f"{url} holds {have} participants, not {participants}: use another --db")
        start = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=seed, args=(url, participants, Path(settings.postcode_data), data_key))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit("seeding failed")
        figures["seed_s"] = round(time.perf_counter() - start, 1)
        if keyfile is not None:
            keyfile.write_text(data_key)
    if engine.dialect.name == "postgresql":
        # Selection is an index-only scan, which needs the visibility map VACUUM writes; in production
        # autovacuum keeps it (migration 0006 makes it run early on the reach table). Not timed.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    with sessions() as session:
        session.execute(select(DELIVERY.c.id).limit(1)).all()  # warm the connection

    # Recipient selection: 5 km around the Dam, median of 7 runs (the first one warms the page cache).
    circle = Circle(AMSTERDAM[0], AMSTERDAM[1], 5_000)
    timings = []
    for _ in range(8):
        with sessions() as session:
            start = time.perf_counter()
            recipients = select_recipients(session, area=circle, at=NOW)
            timings.append(time.perf_counter() - start)
    figures["recipients_5km"] = len(recipients)
    figures["select_ms_median"] = round(statistics.median(timings[1:]) * 1000, 1)
    figures["select_ms_max"] = round(max(timings[1:]) * 1000, 1)

    # The same for a concave polygon of about the same area (16 corners, 4.6 and 5.4 km out in turn).
    polygon = parse_area({"polygon": star_ring(AMSTERDAM, 16, 4_600, 5_400)})
    timings = []
    for _ in range(8):
        with sessions() as session:
            start = time.perf_counter()
            inside = select_recipients(session, area=polygon, at=NOW)
            timings.append(time.perf_counter() - start)
    figures["recipients_polygon"] = len(inside)
    figures["polygon_select_ms_median"] = round(statistics.median(timings[1:]) * 1000, 1)
    figures["polygon_select_ms_max"] = round(max(timings[1:]) * 1000, 1)

    # Outbox write: the launch transaction (status change and one bulk insert).
    action = _new_action(sessions, 5_000, "Vermist: man (40)")
    start = time.perf_counter()
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        written = launch_action(session, action=stored, targets=_targets(recipients), now=NOW)
        # Stopped at once: the dispatch runs below measure their own actions.
        close_action(session, action=stored, outcome=ActionOutcome.CANCELLED, closing_text="bench", now=NOW)
    figures["outbox_rows"] = written
    figures["outbox_write_ms"] = round((time.perf_counter() - start) * 1000, 1)

    # Dispatch against the fake provider (its own process, so it does not share our CPU time slice).
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    fake = ctx.Process(target=_serve_fake, args=(ports, workers > 1), daemon=True)
    fake.start()
    try:
        base_url = f"http://127.0.0.1:{ports.get(timeout=30)}"
        figures.update(
            asyncio.run(_measure_dispatch(sessions, base_url, data_key, messages, rate_seconds, repeat))
        )
        if workers > 1:
            assert fake.pid is not None
            figures.update(
                _measure_workers(sessions, url, base_url, fake.pid, data_key, messages, workers, repeat)
            )
    finally:
        fake.terminate()
        fake.join()
    current, peak = _rss_mb()
    figures["rss_mb"] = round(current, 1)
    figures["rss_peak_mb"] = round(peak, 1)
    engine.dispose()
    workdir.cleanup()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print the figures as a table and as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--db", type=Path, help="SQLite file to seed once and reuse")
    parser.add_argument("--database-url", help="an empty (or already seeded) database, e.g. PostgreSQL")
    parser.add_argument("--messages", type=int, default=2_000, help="messages in the throughput run")
    parser.add_argument("--rate-seconds", type=float, default=4.0, help="length of the rate-limited run")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of throughput runs (median reported)")
    parser.add_argument("--key-file", type=Path, help="data key of a seeded --database-url, to reuse it")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="also measure this many dispatcher processes on one outbox, next to 1 (PostgreSQL only)",
    )
    parser.add_argument("--json", action="store_true", help="print only JSON")
    args = parser.parse_args(argv)
    figures = run(
        args.participants,
        args.db,
        args.messages,
        args.rate_seconds,
        args.database_url,
        args.repeat,
        args.key_file,
        args.workers,
    )
    if args.json:
        print(json.dumps(figures))
        return _exit_status(figures)
    print(f"== fan-out benchmark: {figures['participants']:,} participants on {figures['database']}")
    if "seed_s" in figures:
        print(f"  seeding (bulk insert)            {figures['seed_s']:>10} s")
    print(f"  recipients in 5 km around the Dam {figures['recipients_5km']:>9,}")
    print(
        f"  recipient selection (median)     {figures['select_ms_median']:>10} ms   (goal < 100 ms on SQLite)"
    )
    print(f"  recipients in a polygon (~78 km²) {figures['recipients_polygon']:>9,}")
    print(
        f"  polygon selection (median)       {figures['polygon_select_ms_median']:>10} ms"
        "   (goal < 100 ms SQLite, < 50 ms PostgreSQL)"
    )
    print(f"  outbox write ({figures['outbox_rows']:,} rows)      {figures['outbox_write_ms']:>10} ms")
    low, high = figures["dispatch_ratio_range"]
    print(
        f"  dispatch, rate limits off        {figures['dispatch_per_s']:>10} msg/s  "
        f"plain httpx {figures['baseline_per_s']} req/s  ratio {figures['dispatch_ratio']}"
        f" ({low}-{high} over {figures['dispatch_pairs']} pairs; goal >= 0.8)"
    )
    print(
        f"  CPU per message                  {figures['dispatch_cpu_us']:>10} us     "
        f"plain httpx {figures['baseline_cpu_us']} us  ratio {figures['dispatch_cpu_ratio']}"
    )
    for kind, rate in figures["rate_limited"].items():
        print(
            f"  rate limit {kind:<9}             {rate['achieved_per_s']:>10}/s"
            f" of {rate['configured_per_s']}/s"
            f"  = {rate['ratio']:.1%} ({rate['messages']} msgs; goal >= 95%)"
        )
    print(f"  RSS now / peak                   {figures['rss_mb']:>10} / {figures['rss_peak_mb']} MB")
    if "by_workers" in figures:
        _print_workers(figures)
    print(json.dumps(figures))
    return _exit_status(figures)


def _print_workers(figures: dict[str, Any]) -> None:
    n = figures["workers"]
    print(f"  -- {n} dispatcher processes on one outbox, next to 1 (rate limits off, each its own client)")
    for k, row in figures["by_workers"].items():
        low, high = row["ratio_range"]
        print(
            f"  {k} worker process(es)              {row['dispatch_per_s']:>10} msg/s  "
            f"plain httpx x{k} {row['baseline_per_s']} req/s  ratio {row['ratio']}"
            f" ({low}-{high} over {row['pairs']} pairs)"
        )
        print(
            f"    CPU per message, summed        {row['dispatch_cpu_us']:>10} us     "
            f"plain httpx {row['baseline_cpu_us']} us  (fake {row['fake_cpu_us_dispatch']}"
            f" / {row['fake_cpu_us_baseline']} us)"
        )
        print(
            f"    machine busy (all {figures['cores']} cores)     {row['machine_busy_pct']:>10} %      "
            f"plain httpx {row['baseline_machine_busy_pct']} %  (PostgreSQL and other processes:"
            f" {row['rest_cores']} / {row['baseline_rest_cores']} cores)"
        )
    print(f"    sent by worker ({n} processes)   {figures['by_workers'][str(n)]['sent_by_worker']}")
    print(
        f"  scaling {n} workers / 1            {figures['scaling']:>10}x      "
        f"plain httpx {figures['baseline_scaling']}x"
    )
    once = figures["exactly_once"]
    print(
        f"  exactly once ({once['rounds']} drains, {once['deliveries']:,} deliveries)"
        f"  duplicates {once['duplicates']}  missing {once['missing']}  unsent {once['unsent']}"
        f"  other {once['other']}  -> {'ok' if once['ok'] else 'FAILED'}"
    )


def _exit_status(figures: dict[str, Any]) -> int:
    """Non-zero when a delivery of the multi-worker run arrived twice or not at all."""
    once = figures.get("exactly_once")
    if once is not None and not once["ok"]:
        print("exactly-once check failed: see the `exactly_once` figures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
