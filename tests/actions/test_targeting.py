"""Who gets an action: inside the area, active and reachable, once each on their channel, nearest first."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import distance_m
from storage.models import ParticipantStatus
from storage.targeting import Circle, Municipalities, in_window, parse_area, select_recipients
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, Second, seed_person
from tests.conftest import FixedClock

AREA = Circle(ENSCHEDE[0], ENSCHEDE[1], 2_000)


def _ids(sessions: SessionFactory, area: Circle | Municipalities, at: datetime) -> list[int]:
    with sessions() as session:
        return [r.participant_id for r in select_recipients(session, area=area, at=at)]


@pytest.mark.parametrize(
    ("metres_north", "inside"),
    [(0, True), (1_500, True), (1_990, True), (2_010, False), (2_500, False), (20_000, False)],
    ids=["centre", "1.5km", "just-inside", "just-outside", "2.5km", "20km"],
)
def test_circle_edge(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, metres_north: float, inside: bool
) -> None:
    lat = ENSCHEDE[0] + metres_north / 111_195
    person = seed_person(sessions, vault, clock(), at=(lat, ENSCHEDE[1]))
    assert (person.participant_id in _ids(sessions, AREA, clock())) is inside


def test_circle_east_west_uses_longitude_scaled_by_latitude(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    # 0.025 degrees of longitude is about 1.7 km at 52° N (it would be 2.8 km at the equator).
    near = seed_person(sessions, vault, clock(), at=(ENSCHEDE[0], ENSCHEDE[1] + 0.025))
    far = seed_person(sessions, vault, clock(), at=(ENSCHEDE[0], ENSCHEDE[1] + 0.035))
    assert _ids(sessions, AREA, clock()) == [near.participant_id]
    assert far.participant_id not in _ids(sessions, AREA, clock())


def test_municipality_area(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    enschede = seed_person(sessions, vault, clock(), municipality="0153")
    hengelo = seed_person(sessions, vault, clock(), at=(52.2658, 6.7931), municipality="0164")
    assert _ids(sessions, Municipalities(("0153",)), clock()) == [enschede.participant_id]
    assert set(_ids(sessions, Municipalities(("0153", "0164")), clock())) == {
        enschede.participant_id,
        hengelo.participant_id,
    }


@pytest.mark.parametrize(
    ("status", "opted_out", "gets_it"),
    [
        (ParticipantStatus.ACTIVE, (), True),
        (ParticipantStatus.PENDING, (), False),
        (ParticipantStatus.EXPIRED, (), False),
        (ParticipantStatus.UNSUBSCRIBED, (), False),
        (ParticipantStatus.ACTIVE, (ChannelKind.TELEGRAM,), False),
    ],
    ids=["active", "pending", "expired", "unsubscribed", "opted-out"],
)
def test_only_active_reachable_participants(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    status: ParticipantStatus,
    opted_out: tuple[ChannelKind, ...],
    gets_it: bool,
) -> None:
    person = seed_person(sessions, vault, clock(), status=status, opted_out=opted_out)
    assert (person.participant_id in _ids(sessions, AREA, clock())) is gets_it


def test_opted_out_on_one_channel_gets_it_on_the_other(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    seed_person(
        sessions,
        vault,
        clock(),
        channels=(ChannelKind.TELEGRAM, ChannelKind.SMS),
        preferred=ChannelKind.TELEGRAM,
        opted_out=(ChannelKind.TELEGRAM,),
    )
    with sessions() as session:
        [recipient] = select_recipients(session, area=AREA, at=clock())
    assert recipient.first.channel is ChannelKind.SMS
    assert recipient.others == ()


@pytest.mark.parametrize(
    ("preferred", "first", "then"),
    [
        (ChannelKind.SMS, ChannelKind.SMS, [ChannelKind.TELEGRAM, ChannelKind.WHATSAPP]),
        (ChannelKind.TELEGRAM, ChannelKind.TELEGRAM, [ChannelKind.WHATSAPP, ChannelKind.SMS]),
        (ChannelKind.WHATSAPP, ChannelKind.WHATSAPP, [ChannelKind.TELEGRAM, ChannelKind.SMS]),
    ],
    ids=["prefers-sms", "prefers-telegram", "prefers-whatsapp"],
)
def test_one_alert_per_person_on_the_preferred_channel(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    preferred: ChannelKind,
    first: ChannelKind,
    then: list[ChannelKind],
) -> None:
    seed_person(
        sessions,
        vault,
        clock(),
        channels=(ChannelKind.TELEGRAM, ChannelKind.SMS, ChannelKind.WHATSAPP),
        preferred=preferred,
        # A second address in the area too: still one alert.
        second=Second(ENSCHEDE[0] + 0.001, ENSCHEDE[1], days=None, start=None, end=None),
    )
    with sessions() as session:
        recipients = select_recipients(session, area=AREA, at=clock())
    assert len(recipients) == 1
    assert recipients[0].first.channel is first
    assert [r.channel for r in recipients[0].others] == then


def test_nearest_first(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    offsets = [1_800, 200, 1_200, 0, 600]
    people = [
        seed_person(sessions, vault, clock(), at=(ENSCHEDE[0] + m / 111_195, ENSCHEDE[1])) for m in offsets
    ]
    with sessions() as session:
        recipients = select_recipients(session, area=AREA, at=clock())
    expected = [people[i].participant_id for i in sorted(range(len(offsets)), key=lambda i: offsets[i])]
    assert [r.participant_id for r in recipients] == expected
    assert [r.distance_m for r in recipients] == sorted(r.distance_m for r in recipients)
    assert recipients[-1].distance_m == pytest.approx(
        distance_m(ENSCHEDE[0], ENSCHEDE[1], ENSCHEDE[0] + 1_800 / 111_195, ENSCHEDE[1]), abs=1
    )


def test_distance_is_the_nearest_of_a_persons_addresses(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    far_home = (ENSCHEDE[0] + 1_900 / 111_195, ENSCHEDE[1])
    seed_person(sessions, vault, clock(), at=far_home, second=Second(ENSCHEDE[0], ENSCHEDE[1]))
    with sessions() as session:
        [recipient] = select_recipients(session, area=AREA, at=clock())
    assert recipient.distance_m < 10


FAR = (53.2, 5.8)  # Leeuwarden: the home address lies outside the area


@pytest.mark.parametrize(
    ("second", "at_utc", "inside"),
    [
        (Second(*ENSCHEDE, "12345", time(9), time(17)), datetime(2026, 11, 20, 14, 30, tzinfo=UTC), True),
        (Second(*ENSCHEDE, "12345", time(9), time(15)), datetime(2026, 11, 20, 14, 30, tzinfo=UTC), False),
        # 14:30 UTC is 15:30 in Amsterdam in winter: a 15:00-16:00 window holds only in local time.
        (Second(*ENSCHEDE, "5", time(15), time(16)), datetime(2026, 11, 20, 14, 30, tzinfo=UTC), True),
        # Summer time: 14:30 UTC is 16:30 in Amsterdam.
        (Second(*ENSCHEDE, "5", time(15), time(16)), datetime(2026, 7, 17, 14, 30, tzinfo=UTC), False),
        (Second(*ENSCHEDE, "67", time(9), time(17)), datetime(2026, 11, 20, 14, 30, tzinfo=UTC), False),
        (Second(*ENSCHEDE, "12345", time(9), time(17)), datetime(2026, 11, 21, 11, 0, tzinfo=UTC), False),
        # Night shift Friday 22:00 - 06:00: Saturday 03:00 is inside, Sunday 03:00 is not.
        (Second(*ENSCHEDE, "5", time(22), time(6)), datetime(2026, 11, 21, 2, 0, tzinfo=UTC), True),
        (Second(*ENSCHEDE, "5", time(22), time(6)), datetime(2026, 11, 22, 2, 0, tzinfo=UTC), False),
        (Second(*ENSCHEDE, None, None, None), datetime(2026, 11, 22, 2, 0, tzinfo=UTC), True),
    ],
    ids=[
        "workday-in-hours",
        "workday-after-hours",
        "amsterdam-time-winter",
        "amsterdam-time-summer",
        "weekend-only-on-friday",
        "saturday",
        "night-shift-after-midnight",
        "night-shift-wrong-day",
        "no-window",
    ],
)
def test_second_address_counts_only_inside_its_window(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    second: Second,
    at_utc: datetime,
    inside: bool,
) -> None:
    person = seed_person(sessions, vault, clock(), at=FAR, second=second)
    assert (person.participant_id in _ids(sessions, AREA, at_utc)) is inside


@pytest.mark.parametrize(
    ("local", "inside"),
    [
        (datetime(2026, 11, 20, 8, 59), False),
        (datetime(2026, 11, 20, 9, 0), True),
        (datetime(2026, 11, 20, 16, 59), True),
        (datetime(2026, 11, 20, 17, 0), False),
    ],
    ids=["before", "start", "before-end", "end-is-excluded"],
)
def test_window_bounds(local: datetime, inside: bool) -> None:
    assert in_window("12345", time(9), time(17), local) is inside


@pytest.mark.parametrize(
    "area",
    [{}, {"circle": {"lat": 52.0}}, {"municipalities": []}, {"square": 1}],
    ids=["empty", "circle-without-radius", "no-municipalities", "unknown-shape"],
)
def test_parse_area_refuses_bad_shapes(area: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        parse_area(area)


def test_unflushed_changes_in_the_same_session_count(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    from storage.models import Participant

    person = seed_person(sessions, vault, clock())
    with sessions() as session:
        participant = session.get(Participant, person.participant_id)
        assert participant is not None
        participant.status = ParticipantStatus.UNSUBSCRIBED
        session.add(participant)
        assert select_recipients(session, area=AREA, at=clock()) == []
