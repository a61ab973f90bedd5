"""Store functions for neighbourhood groups that relay alerts: register, match an action, queue, count, erase.

A relay is a group (WhatsApp, Telegram, other) whose coordinator gets each alert in its area ready to
forward, or, for a Telegram group the bot was added to, the group chat itself. Like the other store
functions these take the caller's session and keyword-only arguments and never commit: the router's
or the launch's transaction decides, so a relay and its deliveries change with what caused them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, delete, func, insert, select, update
from sqlmodel import Session, col

from storage.crypto import DataVault
from storage.geo import Place, distance_m
from storage.models import (
    Action,
    ActionStatus,
    ChannelIdentity,
    Delivery,
    DeliveryKind,
    Relay,
    RelayPlatform,
    Tip,
)
from storage.participants import audit, find_identity
from storage.targeting import Circle, Polygon, parse_area
from storage.vocabulary import ChannelKind, DeliveryStatus

RELAY_RULES_VERSION = "2026-1"
RELAY_KINDS = (
    DeliveryKind.RELAY_ALERT,
    DeliveryKind.RELAY_CLOSING,
    DeliveryKind.RELAY_UPDATE,
    DeliveryKind.RELAY_CANCEL,
)
# What a relay message counts as once it is out: sent, delivered, read (or in flight: it may be out).
_REACHED = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.SENDING)


class RelayMessage(Protocol):
    """What `relay_for_tip` reads of an incoming message (`bot.messages.IncomingMessage` has it all)."""

    @property
    def channel(self) -> ChannelKind: ...
    @property
    def text(self) -> str: ...
    @property
    def provider_id(self) -> str | None: ...
    @property
    def reply_to_provider_id(self) -> str | None: ...
    @property
    def start_payload(self) -> str | None: ...
    @property
    def group_id(self) -> str | None: ...


# `TIP BN-4821 R7` (the wa.me text) and `BN-4821_R7` (the t.me start payload): the relay a tip came
# through. Only right after an action code, so that "een Renault R5" in a tip names no relay.
RELAY_REF = re.compile(r"\bBN-?\s?[0-9A-Z]{4}(?:\s+|_)R(\d{1,9})\b", re.IGNORECASE)
DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
RELAY: Table = Relay.__table__  # type: ignore[attr-defined]
IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]


class RelayNotFound(LookupError):
    """No active relay with that id or group."""


@dataclass(frozen=True)
class RelayDraft:
    """The answers of a relay registration, validated by the flow."""

    group_name: str
    platform: RelayPlatform
    area: Mapping[str, Any]
    municipalities: Sequence[str]
    estimated_members: int
    language: str
    rules_version: str
    rules_at: datetime


@dataclass(frozen=True)
class RelayFigures:
    """What the relays did for one action: how many groups and members the alert reached, and their tips."""

    relays: int
    estimated_members: int
    by_status: dict[str, int]
    closings: int
    tips: int

    def as_json(self) -> dict[str, Any]:
        """The figures as the action JSON shows them under `relays`."""
        return {
            "relays": self.relays,
            "estimated_members": self.estimated_members,
            "by_status": self.by_status,
            "closings": self.closings,
            "tips": self.tips,
        }


def postcode_area(places: Sequence[Place]) -> dict[str, Any]:
    """The stored area of a relay for a list of PC4 postcodes (their centres)."""
    seen: dict[str, Place] = {p.pc4: p for p in places}
    return {"postcodes": [{"pc4": p.pc4, "lat": p.lat, "lon": p.lon} for p in seen.values()]}


def circle_area(place: Place, *, radius_m: float) -> dict[str, Any]:
    """The stored area of a relay for a circle around a postcode's centre (no house number is kept)."""
    return {"circle": {"lat": place.lat, "lon": place.lon, "radius_m": radius_m}}


def register_relay(
    session: Session,
    *,
    coordinator: ChannelIdentity,
    draft: RelayDraft,
    now: datetime,
    group_identity: ChannelIdentity | None = None,
) -> Relay:
    """Store a new active relay for a coordinator (and, for a Telegram group, the group chat it posts in)."""
    assert coordinator.id is not None
    relay = Relay(
        coordinator_identity_id=coordinator.id,
        group_identity_id=group_identity.id if group_identity is not None else None,
        group_name=draft.group_name,
        platform=draft.platform,
        area=dict(draft.area),
        municipalities=sorted(set(draft.municipalities)),
        estimated_members=draft.estimated_members,
        language=draft.language,
        rules_version=draft.rules_version,
        rules_at=draft.rules_at,
        created_at=now,
        active=True,
    )
    session.add(relay)
    session.flush()
    audit(
        session,
        now=now,
        actor=f"identity:{coordinator.id}",
        event="relay_registered",
        subject=f"relay:{relay.id}",
        detail={
            "platform": draft.platform.value,
            "members": draft.estimated_members,
            "group": group_identity is not None,
        },
    )
    return relay


def get_relay(session: Session, *, relay_id: int) -> Relay:
    """The active relay with this id. Raises RelayNotFound."""
    relay = session.get(Relay, relay_id)
    if relay is None or not relay.active:
        raise RelayNotFound(relay_id)
    return relay


def relays_of(session: Session, *, identity_ids: Iterable[int]) -> list[Relay]:
    """The relays these identities coordinate, oldest first."""
    ids = sorted(set(identity_ids))
    if not ids:
        return []
    query = select(Relay).where(col(Relay.coordinator_identity_id).in_(ids)).order_by(col(Relay.id))
    return list(session.scalars(query))


def relay_for_group(session: Session, *, vault: DataVault, channel: ChannelKind, group_id: str) -> Relay:
    """The active relay that posts in a group chat (e.g. for a tip written in it). Raises RelayNotFound."""
    identity = find_identity(session, vault=vault, channel=channel, address=group_id)
    if identity is None:
        raise RelayNotFound(group_id)
    relay = session.scalars(
        select(Relay).where(col(Relay.group_identity_id) == identity.id, col(Relay.active).is_(True))
    ).first()
    if relay is None:
        raise RelayNotFound(group_id)
    return relay


def relay_ref(text: str) -> int | None:
    """The relay id after the action code in a tip opened from a relay's link (`TIP BN-4821 R7`), or None."""
    match = RELAY_REF.search(text or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RelaySource:
    """The relay a tip came through, and the action when the message itself names it (a reply to a post)."""

    relay_id: int
    action_id: int | None = None


def relay_for_tip(session: Session, *, vault: DataVault, message: RelayMessage) -> RelaySource:
    """The relay a tip came through: the `R<id>` of a relay's link (`/start BN-4821_R7`, `TIP BN-4821 R7`),
    or the Telegram group it was written in (a reply to the bot's post there also names the action).

    Raises RelayNotFound when the message names no active relay.
    """
    ref = relay_ref(message.start_payload or "") or relay_ref(message.text)
    if ref is not None:
        return RelaySource(get_relay(session, relay_id=ref).id or ref)
    if message.group_id is None:
        raise RelayNotFound(message.provider_id)
    relay = relay_for_group(session, vault=vault, channel=message.channel, group_id=message.group_id)
    assert relay.id is not None
    action_id = None
    if message.reply_to_provider_id is not None:
        # Telegram numbers messages per chat: the post is the relay's delivery with that message id.
        d = DELIVERY.c
        action_id = session.scalar(
            select(d.action_id).where(
                d.relay_id == relay.id,
                d.identity_id == relay.group_identity_id,
                d.provider_id == message.reply_to_provider_id,
            )
        )
    return RelaySource(relay.id, action_id)


def relay_names(session: Session, *, relay_ids: Iterable[int]) -> dict[int, str]:
    """The group names of these relays (erased ones are missing)."""
    ids = sorted(set(relay_ids))
    if not ids:
        return {}
    rows = session.execute(select(Relay.id, Relay.group_name).where(col(Relay.id).in_(ids)))  # type: ignore[call-overload]
    return {int(rid): str(name) for rid, name in rows}


def latest_relay_action(session: Session, *, relay_id: int, now: datetime) -> int | None:
    """The newest running action whose alert went to this relay, or None."""
    d, a = DELIVERY.c, Action.__table__.c  # type: ignore[attr-defined]
    return session.scalar(
        select(d.action_id)
        .join(Action.__table__, a.id == d.action_id)  # type: ignore[attr-defined]
        .where(
            d.relay_id == relay_id,
            d.kind == DeliveryKind.RELAY_ALERT.value,
            a.status == ActionStatus.ACTIVE.value,
            a.expires_at > now,
        )
        .order_by(a.launched_at.desc(), a.id.desc())
        .limit(1)
    )


def erase_relays(session: Session, *, identity_ids: Iterable[int], now: datetime) -> int:
    """Delete the relays these identities coordinate (the coordinator said STOP); returns how many.

    Their past deliveries stay as anonymous counts, no longer tied to a relay.
    """
    ids = [r.id for r in relays_of(session, identity_ids=identity_ids) if r.id is not None]
    if not ids:
        return 0
    session.execute(update(Delivery).where(col(Delivery.relay_id).in_(ids)).values(relay_id=None))
    session.execute(delete(Relay).where(col(Relay.id).in_(ids)))
    audit(session, now=now, actor="system", event="relays_erased", detail={"relays": len(ids)})
    return len(ids)


def touches(
    relay_area: Mapping[str, Any], municipalities: Sequence[str], action_area: Mapping[str, Any]
) -> bool:
    """Whether a relay's area meets an action's: circles that overlap, a PC4 centre inside the action's
    circle, or a shared municipality when the action names municipalities."""
    area = parse_area(action_area)
    if isinstance(area, Polygon):
        return _touches_polygon(relay_area, area)
    if not isinstance(area, Circle):
        return bool(set(area.codes) & set(municipalities))
    if "circle" in relay_area:
        c = relay_area["circle"]
        gap = distance_m(area.lat, area.lon, float(c["lat"]), float(c["lon"]))
        return gap <= area.radius_m + float(c["radius_m"])
    return any(
        distance_m(area.lat, area.lon, float(p["lat"]), float(p["lon"])) <= area.radius_m
        for p in relay_area.get("postcodes", ())
    )


def _touches_polygon(relay_area: Mapping[str, Any], area: Polygon) -> bool:
    """A relay circle whose centre lies inside the polygon or that reaches one of its corners, or a PC4
    centre inside the polygon."""
    if "circle" in relay_area:
        c = relay_area["circle"]
        lat, lon, radius = float(c["lat"]), float(c["lon"]), float(c["radius_m"])
        return area.contains(lat, lon) or any(
            distance_m(lat, lon, pt[0], pt[1]) <= radius for rings in area.parts for pt in rings[0]
        )
    return any(area.contains(float(p["lat"]), float(p["lon"])) for p in relay_area.get("postcodes", ()))


def _reachable_relays(session: Session) -> list[tuple[Relay, int, ChannelKind, str]]:
    """Active relays with the identity their messages go to (the group chat, else the coordinator)."""
    target = func.coalesce(col(Relay.group_identity_id), col(Relay.coordinator_identity_id))
    rows = session.execute(
        select(Relay, IDENTITY.c.id, IDENTITY.c.channel)
        .join(IDENTITY, IDENTITY.c.id == target)
        .where(
            col(Relay.active).is_(True),
            IDENTITY.c.opted_out.is_(False),
            IDENTITY.c.address_enc.is_not(None),
        )
        .order_by(col(Relay.id))
    ).all()
    return [(relay, int(iid), ChannelKind(channel), relay.language) for relay, iid, channel in rows]


def _write(
    session: Session,
    *,
    action_id: int,
    kind: DeliveryKind,
    rows: Sequence[tuple[int, int, ChannelKind, str]],
    now: datetime,
    update_no: int = 0,
) -> int:
    if not rows:
        return 0
    session.execute(
        insert(Delivery),
        [
            {
                "action_id": action_id,
                "participant_id": None,
                "identity_id": identity_id,
                "relay_id": relay_id,
                "kind": kind.value,
                "channel": channel.value,
                "language": language,
                # Rank 0: one relay message reaches a whole group, so it goes with the nearest people.
                "rank": 0,
                "status": DeliveryStatus.QUEUED.value,
                "attempts": 0,
                "next_attempt_at": now,
                "tried": "",
                "created_at": now,
                "updated_at": now,
                "update_no": update_no,
            }
            for relay_id, identity_id, channel, language in rows
        ],
    )
    return len(rows)


def queue_relay_alerts(session: Session, *, action: Action, now: datetime) -> int:
    """Queue the forward-ready alert to each active relay whose area meets the action's and that has not
    had it yet (a widened area adds relays); returns how many."""
    assert action.id is not None
    d = DELIVERY.c
    had = set(
        session.scalars(
            select(d.relay_id).where(
                d.action_id == action.id,
                d.kind == DeliveryKind.RELAY_ALERT.value,
                d.relay_id.is_not(None),
            )
        )
    )
    rows = [
        (relay.id or 0, identity_id, channel, language)
        for relay, identity_id, channel, language in _reachable_relays(session)
        if relay.id not in had and touches(relay.area, relay.municipalities, action.area)
    ]
    return _write(session, action_id=action.id, kind=DeliveryKind.RELAY_ALERT, rows=rows, now=now)


def _reached_relays(session: Session, *, action_id: int) -> list[tuple[int, int, ChannelKind, str]]:
    d = DELIVERY.c
    reached = session.execute(
        select(d.relay_id, d.identity_id, d.channel, d.language).where(
            d.action_id == action_id,
            d.kind == DeliveryKind.RELAY_ALERT.value,
            d.status.in_([s.value for s in _REACHED]),
            d.relay_id.is_not(None),
            d.identity_id.is_not(None),
        )
    ).all()
    return [(int(rid), int(iid), ChannelKind(ch), lang) for rid, iid, ch, lang in reached]


def queue_relay_closings(
    session: Session, *, action_id: int, now: datetime, kind: DeliveryKind = DeliveryKind.RELAY_CLOSING
) -> int:
    """Stop relay alerts and updates still queued and queue the closing (or, `relay_cancel`, the
    correction) to every relay that got (or may have got) the alert."""
    d = DELIVERY.c
    session.execute(
        update(Delivery)
        .where(
            d.action_id == action_id,
            d.kind.in_([DeliveryKind.RELAY_ALERT.value, DeliveryKind.RELAY_UPDATE.value]),
            d.status == DeliveryStatus.QUEUED.value,
        )
        .values(status=DeliveryStatus.FAILED.value, error_code="action_closed", updated_at=now)
    )
    rows = _reached_relays(session, action_id=action_id)
    return _write(session, action_id=action_id, kind=kind, rows=rows, now=now)


def queue_relay_updates(session: Session, *, action_id: int, update_no: int, now: datetime) -> int:
    """Queue an update to every relay that got (or may have got) the alert; returns how many."""
    rows = _reached_relays(session, action_id=action_id)
    return _write(
        session, action_id=action_id, kind=DeliveryKind.RELAY_UPDATE, rows=rows, now=now, update_no=update_no
    )


def relay_of_delivery(session: Session, *, delivery_id: int) -> tuple[int, RelayPlatform] | None:
    """The relay id and platform of a relay delivery (for its link), or None once the relay is gone."""
    row = session.execute(
        select(RELAY.c.id, RELAY.c.platform)
        .select_from(DELIVERY.join(RELAY, RELAY.c.id == DELIVERY.c.relay_id))
        .where(DELIVERY.c.id == delivery_id)
    ).first()
    return (int(row[0]), RelayPlatform(row[1])) if row is not None else None


def relay_figures(session: Session, *, action_id: int) -> RelayFigures:
    """Relays the action's alert went to, their estimated members (of those reached), closings and tips."""
    d = DELIVERY.c
    rows = session.execute(
        select(d.status, func.count(), func.coalesce(func.sum(RELAY.c.estimated_members), 0))
        .select_from(DELIVERY.outerjoin(RELAY, RELAY.c.id == d.relay_id))
        .where(d.action_id == action_id, d.kind == DeliveryKind.RELAY_ALERT.value)
        .group_by(d.status)
    ).all()
    by_status = {str(status): int(n) for status, n, _ in rows}
    reached = {s.value for s in _REACHED}
    members = sum(int(m) for status, _, m in rows if str(status) in reached)
    closings = session.scalar(
        select(func.count()).where(d.action_id == action_id, d.kind == DeliveryKind.RELAY_CLOSING.value)
    )
    return RelayFigures(
        relays=sum(by_status.values()),
        estimated_members=members,
        by_status=by_status,
        closings=int(closings or 0),
        tips=_relay_tips(session, action_id=action_id),
    )


def _relay_tips(session: Session, *, action_id: int) -> int:
    """Tips on the action that came through a relay's link or group."""
    t = Tip.__table__.c  # type: ignore[attr-defined]
    query = select(func.count()).where(t.action_id == action_id, t.relay_id.is_not(None))
    return int(session.scalar(query) or 0)
