"""From a tip's text (and shared location, photos) to the structured facts, with the existing NLU rules."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from nlu.entities import DESCRIPTION, DIRECTION, POSTCODE, VEHICLE_PLATE, read_tip
from nlu.places import Towns
from storage.actions import CODE_PATTERN
from storage.geo import PostcodeBook
from storage.tips import TipFacts
from storage.vocabulary import GeoPoint


@lru_cache(maxsize=4)
def towns_of(book: PostcodeBook) -> Towns:
    """The town and municipality names of a postcode table, to recognise them in tips (built once)."""
    return Towns(name for place in book for name in (place.place, place.municipality_name) if name)


def facts_from(
    text: str,
    *,
    received_at: datetime,
    tz: str,
    location: GeoPoint | None = None,
    media: tuple[str, ...] = (),
    intent: str | None = None,
    towns: Towns | None = None,
) -> TipFacts:
    """When it was seen (phrase and moment), every place, the first direction and plate, every description."""
    # Our codes use letters (nlu's code rule expects digits): blank them so they are not read as words.
    text = CODE_PATTERN.sub(lambda m: " " * len(m.group(0)), text)
    reading = read_tip(text, received_at, tz, towns)
    first: dict[str, str] = {}
    descriptions: list[str] = []
    for span in reading.spans:
        if span.entity == DESCRIPTION:
            if span.value not in descriptions:
                descriptions.append(span.value)
        else:
            first.setdefault(span.entity, span.value)
    seen = reading.seen
    places = reading.places.places or ((first[POSTCODE],) if POSTCODE in first else ())
    return TipFacts(
        # Never the receipt time in place of a time the text does not give: only the phrase then.
        seen_at=seen.value.astimezone(UTC) if seen is not None and seen.value is not None else None,
        seen_text=seen.phrase if seen is not None else None,
        location_text=reading.places.text or first.get(POSTCODE),
        places=places,
        location=location,
        direction=first.get(DIRECTION),
        description=", ".join(descriptions) or None,
        vehicle_plate=first.get(VEHICLE_PLATE),
        intent=intent,
        media=media,
    )
