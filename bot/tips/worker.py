"""A background pass that runs on a poll interval and at once when woken: the shape of the tip workers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)

# How long a worker that is not in a hurry (a marker on the map, a photo) lets wake-ups gather.
GATHER_S = 0.05


class WakeableWorker:
    """Runs `step()` every `poll_s` seconds, and `gather_s` after a `wake()`, until `stop()`."""

    name = "worker"

    def __init__(self, *, poll_s: float, gather_s: float = 0.0) -> None:
        self._poll_s = poll_s
        # Under a burst each wake would cost its own pass (a query at least); a short wait gathers them.
        self._gather_s = gather_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def step(self) -> int:
        """One pass over the work that is due; how many items it finished."""
        raise NotImplementedError

    def wake(self) -> None:
        """There is work: look now; safe from any thread."""
        loop, ready = self._loop, self._wake
        if loop is not None and ready is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(ready.set)

    async def start(self) -> None:
        """Run in the background until `stop()`."""
        if self._task is not None:
            return
        self._stopping = False
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Finish the pass in flight and stop."""
        self._stopping = True
        self.wake()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            try:
                await self.step()
            except Exception:
                log.exception("%s pass failed; trying again shortly", self.name)
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
                if self._gather_s and not self._stopping:
                    await asyncio.sleep(self._gather_s)
