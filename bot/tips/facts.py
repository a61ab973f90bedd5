"""From a tip's text (and shared location, photos) to the structured facts, with the existing NLU rules."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.messages import GeoPoint
from nlu.entities import DESCRIPTION, DIRECTION, PLACE, POSTCODE, TIME_SEEN, VEHICLE_PLATE, find_spans
from storage.actions import CODE_PATTERN
from storage.tips import TipFacts


def facts_from(
    text: str,
    *,
    received_at: datetime,
    tz: str,
    location: GeoPoint | None = None,
    media: tuple[str, ...] = (),
    intent: str | None = None,
) -> TipFacts:
    """The first time, place, direction and plate in the text; every description; the shared location."""
    # Our codes use letters (nlu's code rule expects digits): blank them so they are not read as words.
    text = CODE_PATTERN.sub(lambda m: " " * len(m.group(0)), text)
    first: dict[str, str] = {}
    descriptions: list[str] = []
    for span in find_spans(text, received_at, tz):
        if span.entity == DESCRIPTION:
            if span.value not in descriptions:
                descriptions.append(span.value)
        else:
            first.setdefault(span.entity, span.value)
    seen_at = datetime.fromisoformat(first[TIME_SEEN]).astimezone(UTC) if TIME_SEEN in first else None
    return TipFacts(
        seen_at=seen_at,
        location_text=first.get(PLACE) or first.get(POSTCODE),
        location=location,
        direction=first.get(DIRECTION),
        description=", ".join(descriptions) or None,
        vehicle_plate=first.get(VEHICLE_PLATE),
        intent=intent,
        media=media,
    )
