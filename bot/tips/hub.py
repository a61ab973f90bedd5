"""Wakes this process's stream readers the moment a tip is stored; other processes' tips come by polling.

The hub carries no data: readers always read the events from storage (ids above the last one they sent),
so a reader that missed a wake-up, or a tip stored by another worker process, is caught up by the next
poll and nothing is ever sent from memory that storage does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class TipHub:
    """A thread-safe doorbell for the tip stream's readers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self.rings = 0
        """How often the hub rang: a reader notes it before reading storage, so no ring falls between."""

    def notify(self) -> None:
        """Ring: safe from any thread (the router stores tips in a worker thread)."""
        with self._lock:
            self.rings += 1
            waiters = list(self._waiters)
        for loop, ready in waiters:
            with contextlib.suppress(RuntimeError):  # that reader's loop has closed
                loop.call_soon_threadsafe(ready.set)

    async def wait(self, timeout: float, *, seen: int | None = None) -> bool:
        """Wait for a ring (after the `seen` count of rings) or the timeout; True when rung."""
        ready = asyncio.Event()
        waiter = (asyncio.get_running_loop(), ready)
        with self._lock:
            if seen is not None and self.rings != seen:
                return True
            self._waiters.add(waiter)
        try:
            await asyncio.wait_for(ready.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(waiter)
