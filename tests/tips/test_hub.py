"""The stream's doorbell: rung from the router's worker thread, never missed between read and wait."""

from __future__ import annotations

import asyncio
import threading

from bot.tips.hub import TipHub


async def test_a_ring_from_another_thread_wakes_a_waiting_reader() -> None:
    hub = TipHub()
    waiting = asyncio.create_task(hub.wait(10))
    await asyncio.sleep(0)  # let the reader register
    ringer = threading.Thread(target=hub.notify)
    ringer.start()
    ringer.join()
    assert await waiting is True


async def test_a_ring_between_reading_storage_and_waiting_is_not_lost() -> None:
    hub = TipHub()
    seen = hub.rings  # the reader notes the count, then reads storage...
    hub.notify()  # ...a tip is stored meanwhile...
    assert await hub.wait(10, seen=seen) is True  # ...so it does not wait for the next poll


async def test_without_a_ring_the_wait_ends_at_the_poll() -> None:
    assert await TipHub().wait(0) is False
