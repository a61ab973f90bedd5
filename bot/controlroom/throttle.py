"""Slowing down password guessing, per client address and per account, without a lock-out.

A lock-out after N failures lets anyone who knows a username keep that operator out at will, and a
different answer for a locked account tells which usernames exist. So nothing here ever refuses the
right password to a client that is not itself guessing, and nothing depends on whether an account
exists (the account key is the typed username, known or not):

* **Per client address**: the first `free_failures` failures cost nothing; after that each failure
  makes the address wait twice as long as the one before (`first_delay`, doubling, at most
  `max_delay`) before its next attempt. An attempt during the wait is answered at once, without a
  password check (no CPU for the guesser). A try counts when it is made, before its check, so tries
  sent in parallel are counted too; a success or `forget_after` without failures clears the count.
  This stops one address from guessing fast, whichever accounts it tries.
* **Per account**: when an account collects `account_free` failures from any addresses within
  `forget_after`, it is under attack: from then on every address may try it at most once per
  `account_pace`, so many addresses together still guess slowly. Two kinds of client are never
  slowed by the account's state: an address that logged in to this account successfully within
  `trust_for` (the operator's usual place), and any address's first try within the pace (so the
  operator can log in from a new place while strangers guess, with the right password at once).

Refused tries are tallied here and handed to the audit log at most every `tally_every` per client and
account (a flood from one address is answered hundreds of times a second: one write each would be
most of the cost of answering it); what is still pending when a process stops is not logged.

The client address is the one uvicorn reports: behind the reverse proxy, the `X-Forwarded-For` it
sets (only trusted proxies' headers count, see docs/production.md); else every visitor would share the
proxy's address, and one guesser would slow them all.

The state is in memory: a restart forgets it (a guesser then starts again with a few free tries) and
each worker process of `serve --workers N` keeps its own (N times the budget, the same doubling). The
tables are bounded (`max_entries`, the oldest dropped first), so spoofed-address floods cannot grow them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)
ACCOUNT_FREE = 10
ACCOUNT_PACE = timedelta(seconds=30)
TRUST_FOR = timedelta(days=30)
MAX_ENTRIES = 10_000
TALLY_EVERY = timedelta(seconds=5)


@dataclass
class _Failures:
    count: int
    last: datetime
    wait_until: datetime


class _Bounded(OrderedDict[str, object]):
    """An insertion-ordered table that drops its oldest entries past a size."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: object) -> None:
        """Set a value as the newest entry."""
        self.pop(key, None)
        self[key] = value
        while len(self) > self.limit:
            self.popitem(last=False)


@dataclass(frozen=True)
class Verdict:
    """Whether a login attempt may be checked now; if not, how long until it may."""

    allowed: bool
    retry_after: timedelta = timedelta(0)
    reason: str = ""
    """`client` (this address guesses too fast) or `account` (the account is under attack)."""


class LoginThrottle:
    """Failed-login bookkeeping per client address and per typed username (see the module docstring)."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        free_failures: int = FREE_FAILURES,
        first_delay: timedelta = FIRST_DELAY,
        max_delay: timedelta = MAX_DELAY,
        forget_after: timedelta = FORGET_AFTER,
        account_free: int = ACCOUNT_FREE,
        account_pace: timedelta = ACCOUNT_PACE,
        trust_for: timedelta = TRUST_FOR,
        max_entries: int = MAX_ENTRIES,
        tally_every: timedelta = TALLY_EVERY,
    ) -> None:
        self._clock = clock
        self.free_failures = free_failures
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.account_free = account_free
        self.account_pace = account_pace
        self.trust_for = trust_for
        self.tally_every = tally_every
        self._clients = _Bounded(max_entries)
        self._accounts = _Bounded(max_entries)
        self._tries = _Bounded(max_entries)  # (account, client) → last try while under attack
        self._trusted = _Bounded(max_entries)  # (account, client) → last success
        self._refused = _Bounded(
            max_entries
        )  # (account, client) → [refused tries not yet logged, last logged]

    def check(self, *, client: str, account: str) -> Verdict:
        """May this client try this account now? An allowed try counts against the address's failures
        (until it succeeds) and the account's pace."""
        now = self._clock()
        failures = self._live(self._clients, client, now)
        if failures is not None and failures.wait_until > now:
            return Verdict(False, failures.wait_until - now, "client")
        if self._under_attack(account, now) and not self._is_trusted(account, client, now):
            pair = f"{account}\x00{client}"
            last = self._tries.get(pair)
            if isinstance(last, datetime) and now - last < self.account_pace:
                return Verdict(False, self.account_pace - (now - last), "account")
            self._tries.put(pair, now)
        # Charged before the check, as if it failed (a success clears it): tries sent in parallel
        # cannot all pass before the first of them is counted.
        mine = failures or _Failures(0, now, now)
        mine.count += 1
        mine.last = now
        over = mine.count - self.free_failures
        if over > 0:
            mine.wait_until = now + min(self.max_delay, self.first_delay * (2 ** min(over - 1, 30)))
        self._clients.put(client, mine)
        return Verdict(True)

    def failed(self, *, client: str, account: str) -> None:
        """Count a wrong password (or an unknown username) against the account (the address paid at
        `check`)."""
        now = self._clock()
        theirs = self._live(self._accounts, account, now) or _Failures(0, now, now)
        theirs.count += 1
        theirs.last = now
        self._accounts.put(account, theirs)

    def succeeded(self, *, client: str, account: str) -> None:
        """A right password: the address is not guessing, and it is trusted for this account."""
        self._clients.pop(client, None)
        self._trusted.put(f"{account}\x00{client}", self._clock())

    def refused(self, *, client: str, account: str) -> int:
        """Count a refused try; returns how many to write to the audit log now (0: not yet)."""
        now = self._clock()
        pair = f"{account}\x00{client}"
        found = self._refused.get(pair)
        pending, logged = found if isinstance(found, tuple) else (0, None)
        pending += 1
        if logged is None or now - logged >= self.tally_every:
            self._refused.put(pair, (0, now))
            return pending
        self._refused.put(pair, (pending, logged))
        return 0

    def forget_account(self, account: str) -> None:
        """Clear an account's failures (an admin reset its password)."""
        self._accounts.pop(account, None)

    def client_failures(self, client: str) -> int:
        """How many recent failures an address has (for the audit detail)."""
        found = self._live(self._clients, client, self._clock())
        return found.count if found else 0

    def _live(self, table: _Bounded, key: str, now: datetime) -> _Failures | None:
        found = table.get(key)
        if not isinstance(found, _Failures):
            return None
        if now - found.last >= self.forget_after and found.wait_until <= now:
            table.pop(key, None)
            return None
        return found

    def _under_attack(self, account: str, now: datetime) -> bool:
        found = self._live(self._accounts, account, now)
        return found is not None and found.count >= self.account_free

    def _is_trusted(self, account: str, client: str, now: datetime) -> bool:
        last = self._trusted.get(f"{account}\x00{client}")
        return isinstance(last, datetime) and now - last < self.trust_for
