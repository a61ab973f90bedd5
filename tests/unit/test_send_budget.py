"""The shared send budget: two buckets on one PostgreSQL row together keep one rate; senders do not mix."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.send_budget import SharedBucket
from storage.db import make_engine
from storage.vocabulary import ChannelKind

RATE = 50.0
SENDS = 20


async def _send_all(buckets: list[SharedBucket]) -> float:
    start = time.monotonic()

    async def one(bucket: SharedBucket) -> None:
        for _ in range(SENDS):
            await bucket.acquire()

    await asyncio.gather(*(one(b) for b in buckets))
    return time.monotonic() - start


@pytest.mark.postgres
def test_two_buckets_on_one_row_share_the_rate(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    buckets = [
        SharedBucket(engine, channel=ChannelKind.SMS, sender="+3197010254321", rate=RATE) for _ in range(2)
    ]
    try:
        elapsed = asyncio.run(_send_all(buckets))
    finally:
        for bucket in buckets:
            bucket.close()
        engine.dispose()
    # 40 sends at 50/s: the first goes at once, the last 39 intervals later.
    assert elapsed >= (2 * SENDS - 1) / RATE * 0.95


@pytest.mark.postgres
def test_another_sender_has_its_own_budget(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    buckets = [
        SharedBucket(engine, channel=ChannelKind.SMS, sender=sender, rate=RATE)
        for sender in ("+3197010254321", "+3197010254322")
    ]
    try:
        elapsed = asyncio.run(_send_all(buckets))
    finally:
        for bucket in buckets:
            bucket.close()
        engine.dispose()
    assert elapsed < (2 * SENDS - 1) / RATE * 0.9
