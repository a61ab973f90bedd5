"""A tip's facts: the time phrase beside the moment it means, never the receipt time in its place, and
every place the tip names in order with its town (what the control room shows and the geocoder tries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.flows.tip_facts import facts_from, towns_of
from bot.texts import Catalogue
from bot.tips.chat import chat_text
from storage.geo import PostcodeBook
from storage.models import ChannelKind, Tip
from storage.tips import TipFacts, _apply_facts, tip_json

AMS = "Europe/Amsterdam"


def _at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 20, hour, minute, tzinfo=ZoneInfo(AMS))


def test_nu_net_five_minutes_ago_is_five_minutes_before_receipt() -> None:
    received = _at(14, 55)
    facts = facts_from("nu net 5 minuten geleden zag ik hem bij de jumbo", received_at=received, tz=AMS)
    assert facts.seen_at == (received - timedelta(minutes=5)).astimezone(UTC)


def test_quarter_past_three_after_midnight_is_yesterday_afternoon_with_its_phrase() -> None:
    facts = facts_from("net gezien, om kwart over 3 bij de Hema", received_at=_at(0, 55), tz=AMS)
    assert facts.seen_at == datetime(2026, 11, 19, 14, 15, tzinfo=UTC)
    assert facts.seen_text == "om kwart over 3"


@pytest.mark.parametrize(
    "text", ["ik zag hem gisteren bij de hema", "eerder vandaag bij de jumbo", "vanavond"]
)
def test_a_time_that_cannot_be_resolved_keeps_the_phrase_and_no_seen_time(text: str) -> None:
    facts = facts_from(text, received_at=_at(14, 0), tz=AMS)
    assert facts.seen_at is None  # never the receipt time
    assert facts.seen_text is not None and facts.seen_text in text


def test_every_place_is_kept_with_street_furniture_as_a_detail() -> None:
    facts = facts_from("zat op het bankje bij de Oude Markt", received_at=_at(14, 0), tz=AMS)
    assert facts.location_text == "Oude Markt, bankje"
    assert facts.places == ("Oude Markt",)


def test_a_landmark_and_its_street_are_both_kept() -> None:
    facts = facts_from("bij de Hema in de Kalanderstraat", received_at=_at(14, 0), tz=AMS)
    assert facts.location_text == "Hema, Kalanderstraat"
    assert facts.places == ("Kalanderstraat", "Hema")


def test_the_town_is_recognised_from_the_postcode_table(book: PostcodeBook) -> None:
    facts = facts_from("bij het station Enschede", received_at=_at(14, 0), tz=AMS, towns=towns_of(book))
    assert facts.location_text == "station, Enschede"
    assert facts.places == ("station Enschede", "Enschede")
    assert towns_of(book) is towns_of(book)  # built once per table


def _tip(**fields: object) -> Tip:
    now = datetime(2026, 11, 20, 13, 55, tzinfo=UTC)
    values: dict[str, object] = {
        "id": 7, "action_id": 1, "channel": ChannelKind.SMS, "reporter": "R-X", "sender_hash": "h",
        "text": "t", "media": [], "places": [], "received_at": now, "updated_at": now,
    }  # fmt: skip
    return Tip(**(values | fields))


def test_tip_json_carries_the_phrase_and_the_places_and_keeps_its_fields() -> None:
    tip = _tip(
        seen_at=datetime(2026, 11, 20, 13, 50, tzinfo=UTC),
        seen_text="nu net 5 minuten geleden",
        location_text="Hema, Kalanderstraat, Enschede",
        places=["Kalanderstraat Enschede", "Hema Enschede", "Enschede"],
    )
    data = tip_json(tip, action_code="BN-ABCD")
    assert data["seen_at"] == "2026-11-20T13:50:00+00:00"
    assert data["seen_text"] == "nu net 5 minuten geleden"
    assert data["location"] == {"text": "Hema, Kalanderstraat, Enschede", "lat": None, "lon": None}
    assert data["places"] == ["Kalanderstraat Enschede", "Hema Enschede", "Enschede"]


def test_a_later_message_resolves_a_time_the_first_only_named() -> None:
    tip = _tip(seen_at=None, seen_text=None, location_text=None)
    _apply_facts(tip, TipFacts(seen_text="gisteren"))
    assert (tip.seen_at, tip.seen_text) == (None, "gisteren")
    at = datetime(2026, 11, 19, 21, 0, tzinfo=UTC)
    _apply_facts(tip, TipFacts(seen_at=at, seen_text="om 22.00", location_text="Hema", places=("Hema",)))
    assert (tip.seen_at, tip.seen_text) == (at, "om 22.00")
    assert (tip.location_text, tip.places) == ("Hema", ["Hema"])


def test_the_operators_chat_shows_the_phrase_beside_the_time_or_alone(catalogue: Catalogue) -> None:
    base = {"id": 3, "action_code": "BN-ABCD", "channel": "sms", "reporter": "R-X", "text": "t", "media": []}
    timed = base | {"seen_at": "2026-11-20T13:50:00+00:00", "seen_text": "nu net 5 minuten geleden"}
    untimed = base | {"seen_at": None, "seen_text": "gisteren"}
    assert "14:50 20-11 (‘nu net 5 minuten geleden’)" in chat_text(
        timed, catalogue, event="tip.created", tz=AMS
    )
    assert ": ‘gisteren’" in chat_text(untimed, catalogue, event="tip.created", tz=AMS)
