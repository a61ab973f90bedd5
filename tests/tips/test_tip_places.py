"""Tips on the map: the place a tip names is looked up after the tip is stored (PDOK Locatieserver, here a
loopback fake in its documented format, or the postcode table), only inside the action's area, and the
changed tip reaches the live page's stream again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from bot.controlroom.tipfeed import TipView
from bot.conversations import ConversationRouter
from bot.geocoder import FallbackGeocoder, Geocoder, LocatieserverGeocoder, PostcodeGeocoder
from bot.tips.places import TipPlaces
from bot.tips.wiring import TipServices
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook, distance_m
from storage.tip_places import set_tip_point
from tests.conftest import FixedClock
from tests.fakes.locatieserver import FakeLocatieserver
from tests.tips.conftest import forwards, launch, person, say, stored_tips

OUDE_MARKT = (52.21960, 6.89640)


@pytest.fixture
def fake() -> Iterator[FakeLocatieserver]:
    """Locatieserver on a loopback port."""
    with FakeLocatieserver() as server:
        yield server


@pytest.fixture
async def remote(fake: FakeLocatieserver, book: PostcodeBook) -> AsyncIterator[Geocoder]:
    """Locatieserver with the postcode table behind it, as GEOCODER_URL wires it."""
    async with httpx.AsyncClient() as http:
        yield FallbackGeocoder(
            LocatieserverGeocoder(fake.base_url, http=http, timeout_s=0.5), PostcodeGeocoder(book)
        )


def places(sessions: SessionFactory, clock: FixedClock, geocoder: Geocoder, book: PostcodeBook) -> TipPlaces:
    """The place finder on the test's storage."""
    return TipPlaces(sessions=sessions, clock=clock, geocoder=geocoder, book=book)


async def tip_with(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock, text: str
) -> None:
    """One tip from someone who got the alert of an action around Enschede's centre (2 km)."""
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, f"{action.code} {text}")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        pytest.param("Ik zag hem om 15:10 bij de Oude Markt", OUDE_MARKT, id="street-without-town"),
        pytest.param("Gezien bij de Kalanderstraat in Enschede", (52.21975, 6.89412), id="street-and-town"),
        pytest.param("Hij liep om 15:10 langs 7511 AB", (52.21990, 6.89418), id="postcode"),
        # The tip's places, most specific first: the street is found though "Hema" alone is not.
        pytest.param(
            "om 15:10 bij de hema in de kalanderstraat", (52.21975, 6.89412), id="landmark-and-street"
        ),
    ],
)
async def test_a_tips_place_is_found_inside_the_area(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, fake: FakeLocatieserver, tips: TipServices, text: str, where: tuple[float, float],
) -> None:  # fmt: skip
    await tip_with(router, sessions, vault, clock, text)
    [stored] = stored_tips(sessions)
    assert stored.location_text and stored.lat is None  # the tip is stored (and shown) before the lookup
    shown_at = stored.updated_at
    clock.advance(seconds=1)
    assert await places(sessions, clock, remote, book).step() == 1
    [tip] = stored_tips(sessions)
    assert tip.lat is not None and tip.lon is not None
    assert distance_m(tip.lat, tip.lon, *where) < 50
    assert fake.requests[0].endpoint == "free" and fake.requests[0].params["lat"] == "52.22"
    # The live page's stream sends changed tips: this one changed, with its point.
    changed: list[TipView] = tips.feed.changed(action_id=tip.action_id, since=shown_at, upto=tip.id or 0)
    assert [(t.id, t.lat) for t in changed] == [(tip.id, tip.lat)]


async def test_a_place_outside_the_area_gets_no_marker(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, fake: FakeLocatieserver,
) -> None:  # fmt: skip
    await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 in Hengelo")
    finder = places(sessions, clock, remote, book)
    assert await finder.step() == 0
    assert [t.lat for t in stored_tips(sessions)] == [None]
    asked = len(fake.requests)
    assert asked >= 1
    assert await finder.step() == 0  # tried once: not asked again
    assert len(fake.requests) == asked


@pytest.mark.parametrize(
    ("text", "placed"),
    [
        pytest.param("Hij liep om 15:10 langs 7511 AB", True, id="postcode"),
        pytest.param("Ik zag hem om 15:10 bij de Oude Markt", False, id="street-unknown-offline"),
    ],
)
async def test_offline_the_postcode_table_places_tips(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    text: str, placed: bool,
) -> None:  # fmt: skip
    await tip_with(router, sessions, vault, clock, text)
    assert await places(sessions, clock, PostcodeGeocoder(book), book).step() == int(placed)
    [tip] = stored_tips(sessions)
    # A street the table does not know is not put on the town's centre as if it were there.
    assert (tip.lat is not None) is placed


async def test_a_dead_geocoder_falls_back_to_the_postcode_table(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, fake: FakeLocatieserver,
) -> None:  # fmt: skip
    fake.fail_status = 503
    await tip_with(router, sessions, vault, clock, "Hij liep om 15:10 langs 7511 AB")
    assert await places(sessions, clock, remote, book).step() == 1
    [tip] = stored_tips(sessions)
    assert tip.lat is not None and distance_m(tip.lat, tip.lon or 0, 52.22, 6.9001) < 10


async def test_a_slow_geocoder_does_not_hold_up_the_tip(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, fake: FakeLocatieserver, tips: TipServices,
) -> None:  # fmt: skip
    fake.delay_s = 0.3
    finder = places(sessions, clock, remote, book)
    tips.places = finder  # as `bind` wires it: a stored tip rings the finder
    await finder.start()
    try:
        await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 bij de Oude Markt")
        [tip] = stored_tips(sessions)
        assert tip.lat is None  # stored and answered before the geocoder answered
        assert len(tips.feed.tips(action_id=tip.action_id)) == 1
        for _ in range(100):
            if stored_tips(sessions)[0].lat is not None:
                break
            await asyncio.sleep(0.02)
        assert stored_tips(sessions)[0].lat is not None
    finally:
        await finder.stop()


async def test_tips_without_a_place_in_the_area_do_not_hold_up_later_ones(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, fake: FakeLocatieserver,
) -> None:  # fmt: skip
    finder = TipPlaces(sessions=sessions, clock=clock, geocoder=remote, book=book, batch=2)
    for _ in range(3):
        await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 in Hengelo")
    assert await finder.step() == 0
    asked = len(fake.requests)
    await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 bij de Oude Markt")
    assert await finder.step() == 1
    assert [t.lat is not None for t in stored_tips(sessions)] == [False, False, False, True]
    assert all(r.params["q"].startswith("Oude Markt") for r in fake.requests[asked:])  # not again


async def test_tips_older_than_the_lookback_are_left_alone(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, fake: FakeLocatieserver,
) -> None:  # fmt: skip
    await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 bij de Oude Markt")
    clock.advance(minutes=11)
    assert await places(sessions, clock, remote, book).step() == 0
    assert stored_tips(sessions)[0].lat is None and fake.requests == []


async def test_a_shared_location_is_not_overwritten(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 bij de Oude Markt")
    [tip] = stored_tips(sessions)
    with transaction(sessions) as session:
        assert set_tip_point(session, tip_id=tip.id or 0, lat=52.1, lon=6.1, now=clock()) is True
    with transaction(sessions) as session:
        assert set_tip_point(session, tip_id=tip.id or 0, lat=52.2, lon=6.2, now=clock()) is False
    assert (stored_tips(sessions)[0].lat, stored_tips(sessions)[0].lon) == (52.1, 6.1)


@pytest.mark.parametrize("webhook", [True, False])
async def test_the_point_goes_out_as_a_new_version_of_the_tip(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    book: PostcodeBook,
    remote: Geocoder, webhook: bool,
) -> None:  # fmt: skip
    await tip_with(router, sessions, vault, clock, "Ik zag hem om 15:10 bij de Oude Markt")
    rung: list[str] = []
    finder = TipPlaces(
        sessions=sessions, clock=clock, geocoder=remote, book=book, webhook=webhook,
        on_placed=lambda: rung.append("placed"),
    )  # fmt: skip
    assert await finder.step() == 1
    created, updated = forwards(sessions)
    assert (created.event, updated.event) == ("tip.created", "tip.updated")
    assert created.payload["location"]["lat"] is None
    location = updated.payload["location"]
    assert location["text"] == "Oude Markt" and distance_m(location["lat"], location["lon"], *OUDE_MARKT) < 50
    assert updated.webhook_state == ("pending" if webhook else "skipped")
    assert rung == ["placed"]
