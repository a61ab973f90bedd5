"""Store functions for the places named in tips: which tips still wait for coordinates, and setting them.

The place is looked up after the tip is stored (the tip reaches the control room first); the update
moves `updated_at`, so the live page's stream sends the tip again and the map shows its marker, and a
forward row carries the new version to the API's tip stream and the webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from storage.models import Action, Tip, TipForward
from storage.tips import PENDING, SKIPPED, UPDATED, tip_json, utc


@dataclass(frozen=True)
class PlaceToFind:
    """A tip that names a place but has no coordinates yet, with its action's area."""

    tip_id: int
    updated_at: datetime
    text: str
    area: dict[str, Any]
    places: tuple[str, ...] = ()


def tips_awaiting_place(
    session: Session, *, after: tuple[datetime, int], limit: int = 50
) -> list[PlaceToFind]:
    """Tips changed after `after` (a change time and a tip id, as the last call's last row gave them)
    that name a place and have no coordinates, oldest change first."""
    at, tip_id = after
    # Five columns: more than sqlmodel's typed select takes, so the Core select.
    rows = session.execute(
        core_select(
            col(Tip.id), col(Tip.updated_at), col(Tip.location_text), col(Action.area), col(Tip.places)
        )
        .join(Action, col(Action.id) == col(Tip.action_id))
        .where(
            col(Tip.updated_at) >= at,
            or_(col(Tip.updated_at) > at, col(Tip.id) > tip_id),
            col(Tip.location_text).is_not(None),
            col(Tip.lat).is_(None),
        )
        .order_by(col(Tip.updated_at), col(Tip.id))
        .limit(limit)
    ).all()
    return [
        PlaceToFind(
            int(found_id or 0), utc(updated_at) or at, str(text), dict(area or {}), tuple(places or ())
        )
        for found_id, updated_at, text, area, places in rows
    ]


def set_tip_point(session: Session, *, tip_id: int, lat: float, lon: float, now: datetime) -> bool:
    """Give a tip the coordinates of its place, unless it got some meanwhile (a shared location)."""
    result = session.execute(
        update(Tip)
        .where(col(Tip.id) == tip_id, col(Tip.lat).is_(None))
        .values(lat=lat, lon=lon, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def forward_point(session: Session, *, tip_id: int, now: datetime, webhook: bool) -> None:
    """A new version of the tip (now with its point) for the tip stream and, when set, the webhook."""
    tip = session.get(Tip, tip_id)
    if tip is None:
        return
    action = session.get(Action, tip.action_id)
    session.add(
        TipForward(
            tip_id=tip_id,
            action_id=tip.action_id,
            event=UPDATED,
            payload=tip_json(tip, action_code=action.code if action else ""),
            created_at=now,
            webhook_state=PENDING if webhook else SKIPPED,
            webhook_next_at=now,
        )
    )
