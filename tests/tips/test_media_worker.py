"""The media worker on its own: a provider that is down is asked again with a growing pause, then the file
is given up; a channel that cannot fetch refuses at once; two workers never fetch the same file."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from bot.channels.media import FetchedMedia, MediaUnavailable
from bot.tips.media import MAX_ATTEMPTS, TipMediaFetcher
from storage.crypto import DataVault, new_data_key
from storage.db import SessionFactory, transaction
from storage.keys import rotate_data_key
from storage.models import Action, ChannelIdentity, TipMedia
from storage.tip_media import claim_media
from storage.tips import TipFacts, create_tip
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.tips.conftest import launch, person


class DownSource:
    """A channel whose provider does not answer."""

    def __init__(self) -> None:
        self.asked = 0

    async def fetch_media(self, ref: str, *, max_bytes: int) -> FetchedMedia:
        self.asked += 1
        raise MediaUnavailable("connection refused")


class NotAMediaSource:
    """A channel that sends but cannot fetch (the simulator)."""


def a_tip_with_a_photo(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    who = person(sessions, vault, clock(), ChannelKind.WHATSAPP)
    action = launch(sessions, clock(), who)
    with transaction(sessions) as session:
        identity = session.get(ChannelIdentity, who.identity_id)
        stored = session.get(Action, action.id)
        assert identity is not None and stored is not None
        create_tip(
            session, action=stored, identity=identity, participant=None, vault=vault, text="foto",
            facts=TipFacts(media=("https://api.twilio.com/ref",)), truncated=False, now=clock(),
            webhook=False,
        )  # fmt: skip


def the_row(sessions: SessionFactory) -> TipMedia:
    with sessions() as session:
        return session.exec(select(TipMedia)).one()


def fetcher(sessions: SessionFactory, vault: DataVault, clock: FixedClock, source: object) -> TipMediaFetcher:
    return TipMediaFetcher(
        sessions=sessions, vault=vault, clock=clock, sources={ChannelKind.WHATSAPP: source}, max_bytes=10**7,
        backoff_base_s=5, backoff_max_s=60,
    )  # fmt: skip


async def test_a_provider_that_stays_down_is_asked_a_few_times_then_the_file_is_given_up(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    a_tip_with_a_photo(sessions, vault, clock)
    source = DownSource()
    worker = fetcher(sessions, vault, clock, source)
    pauses = []
    for _ in range(MAX_ATTEMPTS - 1):
        await worker.step()
        row = the_row(sessions)
        assert row.state == "pending" and row.next_attempt_at is not None
        pauses.append(row.next_attempt_at.replace(tzinfo=None) - clock().replace(tzinfo=None))
        await worker.step()  # not due yet: nobody is asked
        clock.advance(seconds=pauses[-1].total_seconds())
    assert pauses == [timedelta(seconds=s) for s in (5, 10, 20, 40)]
    assert source.asked == MAX_ATTEMPTS - 1
    await worker.step()
    row = the_row(sessions)
    assert (row.state, row.reason, row.ref, source.asked) == ("refused", "unavailable", "", MAX_ATTEMPTS)


async def test_a_channel_that_cannot_fetch_refuses_at_once(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    a_tip_with_a_photo(sessions, vault, clock)
    assert await fetcher(sessions, vault, clock, NotAMediaSource()).step() == 1
    assert (the_row(sessions).state, the_row(sessions).reason) == ("refused", "no_channel")


def test_a_leased_file_is_not_claimed_twice(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    a_tip_with_a_photo(sessions, vault, clock)
    with transaction(sessions) as session:
        first = claim_media(session, now=clock(), lease=timedelta(minutes=2))
    with transaction(sessions) as session:
        second = claim_media(session, now=clock(), lease=timedelta(minutes=2))
    assert len(first) == 1 and second == []
    clock.advance(minutes=3)  # a worker that died: its lease runs out and another takes the file
    with transaction(sessions) as session:
        assert [m.id for m in claim_media(session, now=clock(), lease=timedelta(minutes=2))] == [first[0].id]
    with sessions() as session:
        assert session.exec(select(TipMedia).where(col(TipMedia.lease_until).is_not(None))).one()


class WorkingSource:
    """A channel that hands over a photo."""

    async def fetch_media(self, ref: str, *, max_bytes: int) -> FetchedMedia:
        return FetchedMedia(data=b"\xff\xd8\xff photo bytes", content_type="image/jpeg")


async def test_a_stored_photo_survives_a_data_key_rotation(
    sessions: SessionFactory, clock: FixedClock
) -> None:
    old_key, new_key = new_data_key(), new_data_key()
    old = DataVault(old_key)
    a_tip_with_a_photo(sessions, old, clock)
    assert await fetcher(sessions, old, clock, WorkingSource()).step() == 1
    rotate_data_key(sessions, vault=DataVault(f"{new_key},{old_key}"))
    token = the_row(sessions).data_enc
    assert token is not None
    assert DataVault(new_key).decrypt_bytes(token) == b"\xff\xd8\xff photo bytes"
