"""Fan-out benchmark: recipient selection, outbox write and dispatch throughput of one action.

Seeds N participants over the real Dutch PC4 postcodes (bulk insert), launches an action with a 5 km
circle in the centre of Amsterdam and measures:
  * recipient selection time (median of several runs; goal < 100 ms on SQLite at 1M participants),
  * the outbox write (one bulk insert in the launch transaction),
  * dispatch throughput to a local fake HTTP provider with rate limits off, as a ratio to a plain httpx
    client posting the same number of requests to the same fake in the same run (goal >= 0.8),
  * with rate limits on, the rate each channel achieved against its configured rate (goal >= 95%),
  * the peak RSS of this (measuring) process; seeding runs in a child process so it does not count.

Run: `.venv/bin/python -m bench.fanout_bench --participants 10000` (CI) or `--participants 1000000`
(by hand; seeding 1M takes a few minutes, `--db PATH` keeps the database for the next run).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from bot.alerts import AlertTexts
from bot.channels.base import RetryableSendError, SendReceipt
from bot.config import Settings, load_settings
from bot.dispatch import Dispatcher
from bot.messages import ChannelKind, OutgoingMessage
from bot.targeting import Circle, select_recipients
from bot.texts import Catalogue
from storage.actions import ActionDraft, Target, close_action, create_action, launch_action
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, make_engine, migrate, session_factory, transaction
from storage.models import (
    Action,
    ActionOutcome,
    ActionType,
    Address,
    ChannelIdentity,
    Delivery,
    Participant,
    ParticipantStatus,
)
from storage.reach import rebuild_reach

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


def _serve_fake(port_queue: Any) -> None:
    """A minimal keep-alive HTTP/1.1 server: answers every POST with a JSON id and records arrival times."""

    arrivals: dict[str, list[float]] = {}

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
                if length:
                    await reader.readexactly(length)
                if method == "GET" and path == "/stats":
                    body = json.dumps(arrivals).encode()
                elif method == "POST" and path == "/reset":
                    arrivals.clear()
                    body = b"{}"
                else:
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
    p_table, i_table, a_table = (m.__table__ for m in (Participant, ChannelIdentity, Address))  # type: ignore[attr-defined]
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
    sessions: SessionFactory, settings: Settings, client: httpx.AsyncClient, data_key: str
) -> Dispatcher:
    channel = HttpChannel(client)
    return Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        lambda: NOW,
        settings,
        "bench",
        vault=DataVault(data_key),
        texts=AlertTexts(Catalogue.load()),
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
    settings = load_settings(
        dispatch_rate_limits=False, dispatch_concurrency=CONCURRENCY, whatsapp_template_default="HXbench"
    )
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


def run(
    participants: int,
    db: Path | None,
    messages: int,
    rate_seconds: float,
    database_url: str | None,
    repeat: int = 3,
    key_file: Path | None = None,
) -> dict[str, Any]:
    """Seed (unless the database is there already), then measure; returns the figures."""
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
        session.execute(select(Delivery.id).limit(1)).all()  # warm the connection

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
    fake = ctx.Process(target=_serve_fake, args=(ports,), daemon=True)
    fake.start()
    try:
        base_url = f"http://127.0.0.1:{ports.get(timeout=30)}"
        figures.update(
            asyncio.run(_measure_dispatch(sessions, base_url, data_key, messages, rate_seconds, repeat))
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
    )
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"== fan-out benchmark: {figures['participants']:,} participants on {figures['database']}")
    if "seed_s" in figures:
        print(f"  seeding (bulk insert)            {figures['seed_s']:>10} s")
    print(f"  recipients in 5 km around the Dam {figures['recipients_5km']:>9,}")
    print(
        f"  recipient selection (median)     {figures['select_ms_median']:>10} ms   (goal < 100 ms on SQLite)"
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
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
