"""Area-only followers in selection: alerted when their PC4 centre lies in the area, once, nearest first."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from sqlmodel import select

from storage.areas import follow_area, start_following
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook, distance_m
from storage.models import ChannelIdentity, Participant, ParticipantStatus
from storage.targeting import Area, Circle, Municipalities, parse_area, select_recipients
from storage.vocabulary import ChannelKind
from tests.actions.conftest import seed_person
from tests.conftest import FixedClock

_chats = itertools.count(700_001)


def seed_follower(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    now: datetime,
    *pc4s: str,
    channel: ChannelKind = ChannelKind.TELEGRAM,
    participant_id: int | None = None,
) -> int:
    """A chat identity following PC4 areas (or more areas for a participant); its participant id."""
    with transaction(sessions) as session:
        if participant_id is None:
            address = str(next(_chats)) if channel is ChannelKind.TELEGRAM else f"+3165{next(_chats):07d}"
            identity = ChannelIdentity(
                channel=channel,
                address_hash=vault.lookup_hash(f"{channel}:{address}"),
                address_enc=vault.encrypt(address),
                created_at=now,
            )
            session.add(identity)
            session.flush()
            participant = start_following(
                session, identity=identity, language="nl", consent_version="2026-1", consent_at=now, now=now
            )
        else:
            found = session.get(Participant, participant_id)
            assert found is not None
            participant = found
        for pc4 in pc4s:
            follow_area(session, participant=participant, place=book.lookup(pc4))
        assert participant.id is not None
        return participant.id


def ids(sessions: SessionFactory, area: Area, at: datetime) -> list[int]:
    with sessions() as session:
        return [r.participant_id for r in select_recipients(session, area=area, at=at)]


def _square(book: PostcodeBook, pc4: str, half_deg: float) -> Area:
    place = book.lookup(pc4)
    lat, lon = place.lat, place.lon
    ring = [
        [lat - half_deg, lon - half_deg],
        [lat - half_deg, lon + half_deg],
        [lat + half_deg, lon + half_deg],
        [lat + half_deg, lon - half_deg],
        [lat - half_deg, lon - half_deg],
    ]
    return parse_area({"polygon": ring})


@pytest.mark.parametrize(
    ("area_of", "inside"),
    [
        (lambda book: Circle(book.lookup("7511").lat, book.lookup("7511").lon, 1_000), True),
        (lambda book: Circle(book.lookup("1012").lat, book.lookup("1012").lon, 5_000), False),
        (lambda book: _square(book, "7511", 0.005), True),
        (lambda book: _square(book, "1012", 0.05), False),
        (lambda book: Municipalities(("0153",)), True),
        (lambda book: Municipalities(("0164",)), False),
    ],
    ids=["circle-in", "circle-out", "polygon-in", "polygon-out", "municipality-in", "municipality-out"],
)
def test_a_follower_is_alerted_when_the_pc4_centre_is_in_the_area(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook, clock: FixedClock, area_of, inside: bool
) -> None:
    follower = seed_follower(sessions, vault, book, clock(), "7511")
    assert (follower in ids(sessions, area_of(book), clock())) is inside


def test_the_circle_edge_is_decided_by_the_pc4_centre(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook, clock: FixedClock
) -> None:
    follower = seed_follower(sessions, vault, book, clock(), "7511")
    centre = book.lookup("7511")
    # 2 km north of the PC4 centre: a circle of 1,990 m misses it, one of 2,010 m holds it.
    lat = centre.lat + 2_000 / 111_195
    assert follower not in ids(sessions, Circle(lat, centre.lon, 1_990), clock())
    assert follower in ids(sessions, Circle(lat, centre.lon, 2_010), clock())


def test_followers_come_nearest_first_with_the_registered(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook, clock: FixedClock
) -> None:
    here, there = book.lookup("7511"), book.lookup("7522")
    near = seed_follower(sessions, vault, book, clock(), "7511")
    far = seed_follower(sessions, vault, book, clock(), "7522")
    between = seed_person(
        sessions, vault, clock(), at=((here.lat + there.lat) / 2, (here.lon + there.lon) / 2)
    ).participant_id
    radius = distance_m(here.lat, here.lon, there.lat, there.lon) + 500
    assert ids(sessions, Circle(here.lat, here.lon, radius), clock()) == [near, between, far]


def test_a_registered_person_who_also_follows_an_area_is_alerted_once(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook, clock: FixedClock
) -> None:
    centre = book.lookup("7511")
    person = seed_person(sessions, vault, clock(), at=(centre.lat, centre.lon))
    # The same participant follows the area of the address and another one inside the circle too.
    seed_follower(sessions, vault, book, clock(), "7511", "7512", participant_id=person.participant_id)
    with sessions() as session:
        found = select_recipients(session, area=Circle(centre.lat, centre.lon, 5_000), at=clock())
    assert [r.participant_id for r in found] == [person.participant_id]
    assert found[0].others == ()
    assert found[0].distance_m == 0.0


def test_a_follower_of_two_areas_is_alerted_once_from_the_nearer(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook, clock: FixedClock
) -> None:
    follower = seed_follower(sessions, vault, book, clock(), "7522", "7511")
    centre = book.lookup("7511")
    with sessions() as session:
        found = select_recipients(session, area=Circle(centre.lat, centre.lon, 10_000), at=clock())
    assert [(r.participant_id, r.distance_m) for r in found] == [(follower, 0.0)]


@pytest.mark.parametrize(
    ("change", "gets_it"),
    [("none", True), ("opted_out", False), ("unsubscribed", False), ("unverified", False)],
)
def test_only_active_reachable_followers(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    change: str,
    gets_it: bool,
) -> None:
    follower = seed_follower(sessions, vault, book, clock(), "7511", channel=ChannelKind.WHATSAPP)
    with transaction(sessions) as session:
        participant = session.get(Participant, follower)
        assert participant is not None
        row = session.exec(select(ChannelIdentity).where(ChannelIdentity.participant_id == follower)).one()
        if change == "opted_out":
            row.opted_out = True
        elif change == "unverified":
            row.verified = False
        elif change == "unsubscribed":
            participant.status = ParticipantStatus.UNSUBSCRIBED
        session.add_all([row, participant])
    assert (follower in ids(sessions, Municipalities(("0153",)), clock())) is gets_it


def test_an_area_nobody_follows_costs_no_join(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed_follower(sessions, vault, book, clock(), "7511")

    def no_join() -> None:
        raise AssertionError("the followers' join was built for an area nobody follows")

    monkeypatch.setattr("storage.targeting._followers_query", no_join)
    centre = book.lookup("1012")
    assert ids(sessions, Circle(centre.lat, centre.lon, 5_000), clock()) == []


@pytest.mark.parametrize("by_id", [True, False], ids=["few-by-id", "many-by-box"])
def test_followers_found_by_id_or_by_the_whole_join_are_the_same(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    by_id: bool,
) -> None:
    near = seed_follower(sessions, vault, book, clock(), "7511")
    far = seed_follower(sessions, vault, book, clock(), "7522", "7511")
    seed_follower(sessions, vault, book, clock(), "1012")
    if not by_id:
        monkeypatch.setattr("storage.targeting.FOLLOWED_BY_ID", 1)
    centre = book.lookup("7511")
    assert sorted(ids(sessions, Circle(centre.lat, centre.lon, 10_000), clock())) == sorted([near, far])
