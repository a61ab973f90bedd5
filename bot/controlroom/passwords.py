"""Password hashing off the event loop: argon2 in worker threads of its own, a bounded number at once.

An argon2 check costs tens to hundreds of milliseconds of CPU and 64 MiB by design. Run inside the event
loop, each one stalls every other request (webhooks, `/healthz`, live streams), so a flood of bad logins
stalls the whole server. argon2-cffi releases the GIL while it hashes, so a worker thread keeps the loop
free. The threads are this object's own (not the loop's default executor, which the database calls of
`/healthz` and the live streams use), and a semaphore lets only `at_once` checks run: a flood queues
behind them instead of taking every core and a 64 MiB block per request.

The worker threads also run at a lower CPU priority (`nice` +10; argon2's own threads, started from
them, inherit it): argon2 runs with 4 lanes, so two checks at once keep 8 threads busy, and at equal
priority the event loop's one thread would get a ninth of the CPU. With the lower priority the
scheduler gives the loop what it needs first and argon2 the rest, so webhooks stay fast under a flood
while logins still get every idle cycle.

A login for an unknown or inactive account is checked against a dummy hash made with the same
parameters, so it costs the same time as a real check and the answer's timing names no account.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

T = TypeVar("T")
DEFAULT_AT_ONCE = 2
LOWER_PRIORITY = 10
"""How much nicer (Linux `nice`) the hashing threads are than the event loop's."""


def _lower_priority() -> None:
    # On Linux a thread has its own nice value; elsewhere (or when refused) the threads run as they are.
    with contextlib.suppress(AttributeError, OSError):
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), own + LOWER_PRIORITY)


class PasswordWorkers:
    """Hash and verify passwords in worker threads, at most `at_once` at a time."""

    def __init__(self, hasher: PasswordHasher, *, at_once: int = DEFAULT_AT_ONCE) -> None:
        self.hasher = hasher
        self.at_once = max(1, at_once)
        self._threads = ThreadPoolExecutor(
            max_workers=self.at_once, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._slots: asyncio.Semaphore | None = None
        self._dummy: str | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        # Made on first use, inside the running loop (an app may be built before its loop starts).
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.at_once)
        return self._slots

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        # Waiting here, not in the executor's queue: the loop decides the order, and a task cancelled
        # while it waits never costs a check.
        async with self._semaphore():
            return await asyncio.get_running_loop().run_in_executor(self._threads, work, *args)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether the password matches the stored hash; None (no such account) checks a dummy hash."""
        return await self._run(self.verify_now, stored or "", password)

    async def hash(self, password: str) -> str:
        """A new argon2id hash of the password."""
        return await self._run(self.hasher.hash, password)

    def needs_rehash(self, stored: str) -> bool:
        """Whether a stored hash was made with other parameters than today's (cheap: no hashing)."""
        return self.hasher.check_needs_rehash(stored)

    def verify_now(self, stored: str, password: str) -> bool:
        """The check itself, in the calling thread; an empty `stored` checks the dummy hash and fails."""
        if not stored:
            self._verify(self._dummy_hash(), password)
            return False
        return self._verify(stored, password)

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash(secrets.token_hex(16))
        return self._dummy

    def close(self) -> None:
        """Stop the worker threads (checks under way finish first)."""
        self._threads.shutdown(wait=True)
