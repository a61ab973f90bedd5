"""Helpers for action tests: people seeded straight into storage, and fake channels that fail on demand."""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import pytest

from bot.alerts import AlertTexts
from bot.channels.base import SendError, SendReceipt
from bot.config import Settings, load_settings
from bot.messages import OutgoingMessage
from bot.texts import Catalogue
from storage.actions import ActionDraft, Target, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionType, Address, ChannelIdentity, Participant, ParticipantStatus
from storage.targeting import Circle, select_recipients
from storage.vocabulary import ChannelKind

ENSCHEDE = (52.2215, 6.8937)  # PC4 7511, the centre of Enschede
_numbers = itertools.count(1)


class WorkerKilled(BaseException):
    """Stands in for kill -9: nothing after it runs in the dying worker."""


@dataclass
class Second:
    """A second address with a weekly window."""

    lat: float
    lon: float
    days: str | None = "12345"
    start: time | None = time(9, 0)
    end: time | None = time(17, 0)


@dataclass
class Person:
    """Ids of a seeded participant and their identities per channel, and their addresses per channel."""

    participant_id: int
    identities: dict[ChannelKind, int]
    addresses: dict[ChannelKind, str]


def seed_person(
    sessions: SessionFactory,
    vault: DataVault,
    now: datetime,
    *,
    at: tuple[float, float] = ENSCHEDE,
    channels: Iterable[ChannelKind] = (ChannelKind.TELEGRAM,),
    preferred: ChannelKind | None = None,
    status: ParticipantStatus = ParticipantStatus.ACTIVE,
    opted_out: Iterable[ChannelKind] = (),
    second: Second | None = None,
    municipality: str = "0153",
    language: str = "nl",
    last_inbound_at: datetime | None = None,
) -> Person:
    """Store one participant with an address and identities, as registration would."""
    channels = list(channels)
    number = next(_numbers)
    with transaction(sessions) as session:
        person = Participant(
            status=status,
            language=language,
            preferred_channel=preferred or channels[0],
            created_at=now,
            confirmed_at=now,
        )
        session.add(person)
        session.flush()
        assert person.id is not None
        identities: dict[ChannelKind, int] = {}
        addresses: dict[ChannelKind, str] = {}
        for channel in channels:
            address = str(900000 + number) if channel is ChannelKind.TELEGRAM else f"+316{number:08d}"
            identity = ChannelIdentity(
                participant_id=person.id,
                channel=channel,
                address_hash=vault.lookup_hash(f"{channel}:{address}"),
                address_enc=vault.encrypt(address),
                language=language,
                opted_out=channel in set(opted_out),
                last_inbound_at=last_inbound_at,
                created_at=now,
            )
            session.add(identity)
            session.flush()
            assert identity.id is not None
            identities[channel], addresses[channel] = identity.id, address
        places = [(1, at[0], at[1], None)]
        if second is not None:
            places.append((2, second.lat, second.lon, second))
        for slot, lat, lon, window in places:
            session.add(
                Address(
                    participant_id=person.id,
                    slot=slot,
                    postcode="7511 AB",
                    house_number=number,
                    lat=lat,
                    lon=lon,
                    municipality_code=municipality,
                    municipality_name="Enschede",
                    place="Enschede",
                    window_days=window.days if window else None,
                    window_start=window.start if window else None,
                    window_end=window.end if window else None,
                )
            )
        return Person(person.id, identities, addresses)


class FakeChannel:
    """A channel that accepts everything, except what a test scripted to fail or to kill the worker."""

    def __init__(self, kinds: Iterable[ChannelKind], *, kill_after: int | None = None) -> None:
        self.kinds = frozenset(kinds)
        self.sent: list[OutgoingMessage] = []
        self.attempts: list[OutgoingMessage] = []
        self.kill_after = kill_after
        self._script: dict[str, deque[SendError]] = defaultdict(deque)
        self._ids = itertools.count(1)

    def fail(self, recipient: str, *errors: SendError) -> None:
        """Make the next sends to a recipient raise these errors, in order."""
        self._script[recipient].extend(errors)

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Record the message, or raise what the script says."""
        self.attempts.append(message)
        if self.kill_after is not None and len(self.sent) >= self.kill_after:
            raise WorkerKilled
        script = self._script.get(message.recipient)
        if script:
            raise script.popleft()
        self.sent.append(message)
        return SendReceipt(provider_id=f"{next(iter(self.kinds)).value}-{next(self._ids)}", segments=1)

    def recipients(self) -> list[str]:
        """Who got a message, in sending order."""
        return [m.recipient for m in self.sent]


def dispatch_settings(**overrides: object) -> Settings:
    """Settings for a dispatcher under test: no rate limits, small batches, one send at a time."""
    base: Mapping[str, object] = {
        "dispatch_rate_limits": False,
        "dispatch_concurrency": 1,
        "dispatch_batch_size": 10,
        "dispatch_max_attempts": 3,
        "dispatch_backoff_base_s": 10.0,
        "dispatch_backoff_max_s": 60.0,
        "whatsapp_template_default": "HX_default",
        "whatsapp_template_missing_person": "HX_missing",
        "whatsapp_template_closing": "HX_closing",
    }
    return load_settings(**{**base, **overrides})


@pytest.fixture(scope="session")
def texts() -> AlertTexts:
    """The alert texts from the real catalogues."""
    return AlertTexts(Catalogue.load())


@pytest.fixture
def settings() -> Settings:
    """Dispatcher settings for tests."""
    return dispatch_settings()


def draft_over_enschede(
    sessions: SessionFactory, clock: Callable[[], datetime], radius_m: float = 5_000
) -> int:
    """A missing-person draft over a circle around Enschede; its id."""
    area = {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": radius_m}}
    with transaction(sessions) as session:
        action = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline="Vermist: jongen (8), blauwe jas",
                description="Tim is sinds 14:00 vermist rond het Volkspark.",
                instruction="Bel 112 als u hem ziet.",
                area=area,
                expires_at=clock() + timedelta(hours=2),
            ),
            now=clock(),
            created_by="test",
        )
        return action.id or 0


def launch_over_enschede(
    sessions: SessionFactory, clock: Callable[[], datetime], action_id: int, radius_m: float = 5_000
) -> Action:
    """Launch a draft to everyone its circle around Enschede reaches, as the launch service does."""
    with transaction(sessions) as session:
        action = session.get(Action, action_id)
        assert action is not None
        recipients = select_recipients(session, area=Circle(ENSCHEDE[0], ENSCHEDE[1], radius_m), at=clock())
        targets = [
            Target(r.participant_id, r.first.identity_id, r.first.channel, r.language, r.distance_m)
            for r in recipients
        ]
        launch_action(session, action=action, targets=targets, now=clock())
        return action
