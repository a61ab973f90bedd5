"""Area-only following: a person follows PC4 areas with nothing but their chat identity.

Such a person is a `Participant` without name, phone or address: the row holds only what every
participant has (status, language, consent, dates), so STOP, MIJN GEGEVENS, erasure and the dispatcher
treat them like anyone. What they follow is a `FollowedArea`: the four digits and the PC4's public
centre from the postcode table, never a location they shared.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.geo import Place
from storage.models import ChannelIdentity, FollowedArea, Participant, ParticipantStatus

MAX_FOLLOWED_AREAS = 5


class TooManyAreas(Exception):
    """The person already follows the most areas allowed."""


def followed_areas_of(session: Session, *, participant: Participant) -> list[FollowedArea]:
    """The areas a person follows, by postcode."""
    return list(
        session.exec(
            select(FollowedArea)
            .where(FollowedArea.participant_id == participant.id)
            .order_by(col(FollowedArea.pc4))
        ).all()
    )


def is_area_only(participant: Participant) -> bool:
    """Whether the person joined by following areas only (no phone number, so no address either)."""
    return participant.phone_hash is None


def start_following(
    session: Session,
    *,
    identity: ChannelIdentity,
    language: str,
    consent_version: str,
    consent_at: datetime,
    now: datetime,
) -> Participant:
    """An area-only participant for an identity that has none yet: consent, language, nothing else."""
    participant = Participant(
        status=ParticipantStatus.ACTIVE,
        language=language,
        preferred_channel=identity.channel,
        consent_version=consent_version,
        consent_at=consent_at,
        created_at=now,
        confirmed_at=now,
    )
    session.add(participant)
    session.flush()
    identity.participant_id = participant.id
    identity.language = language
    session.add(identity)
    session.flush()
    return participant


def follow_area(session: Session, *, participant: Participant, place: Place) -> bool:
    """Follow a PC4 area; returns False when it was followed already. Raises TooManyAreas."""
    areas = followed_areas_of(session, participant=participant)
    if any(a.pc4 == place.pc4 for a in areas):
        return False
    if len(areas) >= MAX_FOLLOWED_AREAS:
        raise TooManyAreas(place.pc4)
    assert participant.id is not None
    session.add(
        FollowedArea(
            participant_id=participant.id,
            pc4=place.pc4,
            lat=place.lat,
            lon=place.lon,
            municipality_code=place.municipality_code,
        )
    )
    session.flush()
    return True


def unfollow_area(session: Session, *, participant: Participant, pc4: str) -> bool:
    """Stop following one PC4 area; returns whether it was followed."""
    result = session.execute(
        delete(FollowedArea).where(
            col(FollowedArea.participant_id) == participant.id, col(FollowedArea.pc4) == pc4
        )
    )
    session.flush()
    return bool(getattr(result, "rowcount", 0))
