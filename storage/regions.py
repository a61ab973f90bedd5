"""Regions operators may launch in, four-eyes rules, and the municipalities an area touches.

A region is a named set of CBS municipality codes (or the whole country). An operator may launch an
action only when the regions they belong to together cover every municipality the action's area
touches; an operator without a region may launch nowhere. Admins are not exempt: they give
themselves a region like anyone else (the migration gave every existing account "Heel Nederland").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.geo import PostcodeBook
from storage.models import Action, ApprovalRule, Operator, OperatorRegion, Region
from storage.targeting import Area, Municipalities, Polygon, parse_area

EVERYWHERE = "Heel Nederland"
ANY_TYPE = "*"
NAME_MAX = 64


class InvalidRegion(ValueError):
    """A region name or municipality list that cannot be used."""


class UnknownRegion(LookupError):
    """No region with that name or id."""


@dataclass(frozen=True)
class Coverage:
    """What an operator's regions cover: everywhere, or a set of codes."""

    everywhere: bool
    codes: frozenset[str]

    def missing(self, touched: Iterable[str]) -> list[str]:
        """The touched municipalities these regions do not cover (none: the operator may launch)."""
        if self.everywhere:
            return []
        return sorted(set(touched) - self.codes)


def touched_municipalities(book: PostcodeBook, area: Area) -> set[str]:
    """The CBS codes of every municipality an area touches.

    A circle or a polygon touches the municipality of every PC4 centre inside it, and always that of
    the PC4 centre nearest to its middle (a small area may hold no centre at all).
    """
    if isinstance(area, Municipalities):
        return set(area.codes)
    if isinstance(area, Polygon):
        lat, lon = area.centre
        inside = {p.municipality_code for p in book if area.contains(p.lat, p.lon)}
    else:
        lat, lon = area.lat, area.lon
        inside = {place.municipality_code for place in book.within(lat, lon, area.radius_m)}
    nearest = book.closest(lat, lon)
    if nearest is not None:
        inside.add(nearest.municipality_code)
    return inside


def municipalities_of_points(book: PostcodeBook, postcodes: Iterable[str]) -> set[str]:
    """The municipalities of a set of PC4 postcodes (an area selected point by point)."""
    codes = set()
    for postcode in postcodes:
        try:
            codes.add(book.lookup(postcode).municipality_code)
        except LookupError:
            continue
    return codes


def touched_by_action(book: PostcodeBook, action: Action) -> set[str]:
    """The municipalities an action's area touches."""
    return touched_municipalities(book, parse_area(action.area))


def coverage(session: Session, *, operator_id: int) -> Coverage:
    """What the operator's regions cover together."""
    rows = session.exec(
        select(Region)
        .join(OperatorRegion, col(OperatorRegion.region_id) == col(Region.id))
        .where(OperatorRegion.operator_id == operator_id)
    ).all()
    return Coverage(
        everywhere=any(r.everywhere for r in rows),
        codes=frozenset(code for r in rows for code in r.municipalities),
    )


def list_regions(session: Session) -> list[Region]:
    """Every region, by name."""
    return list(session.exec(select(Region).order_by(col(Region.name))))


def find_region(session: Session, *, name: str) -> Region:
    """The region with this name. Raises UnknownRegion."""
    region = session.exec(select(Region).where(Region.name == name.strip())).first()
    if region is None:
        raise UnknownRegion(name.strip())
    return region


def save_region(
    session: Session, *, name: str, municipalities: Iterable[str], now: datetime, everywhere: bool = False
) -> Region:
    """Create the region or replace its municipalities. Raises InvalidRegion."""
    clean = name.strip()
    codes = sorted({c.strip() for c in municipalities if c.strip()})
    if not clean or len(clean) > NAME_MAX:
        raise InvalidRegion("a region name must be 1-64 characters")
    if not everywhere and not codes:
        raise InvalidRegion("a region needs at least one municipality")
    region = session.exec(select(Region).where(Region.name == clean)).first()
    if region is None:
        region = Region(name=clean, created_at=now)
    region.everywhere = everywhere
    region.municipalities = [] if everywhere else codes
    session.add(region)
    session.flush()
    return region


def delete_region(session: Session, *, name: str) -> None:
    """Remove a region (its members and four-eyes rules go with it). Raises UnknownRegion."""
    region = find_region(session, name=name)
    session.execute(delete(OperatorRegion).where(col(OperatorRegion.region_id) == region.id))
    session.execute(delete(ApprovalRule).where(col(ApprovalRule.region_id) == region.id))
    session.delete(region)


def operator_regions(session: Session, *, operator_id: int) -> list[Region]:
    """The regions an operator belongs to, by name."""
    return list(
        session.exec(
            select(Region)
            .join(OperatorRegion, col(OperatorRegion.region_id) == col(Region.id))
            .where(OperatorRegion.operator_id == operator_id)
            .order_by(col(Region.name))
        )
    )


def set_operator_regions(session: Session, *, operator: Operator, names: Iterable[str]) -> list[Region]:
    """Make the operator a member of exactly these regions. Raises UnknownRegion."""
    assert operator.id is not None
    regions = [find_region(session, name=name) for name in sorted(set(names)) if name.strip()]
    session.execute(delete(OperatorRegion).where(col(OperatorRegion.operator_id) == operator.id))
    for region in regions:
        assert region.id is not None
        session.add(OperatorRegion(operator_id=operator.id, region_id=region.id))
    session.flush()
    return regions


def region_names(session: Session) -> dict[int, list[str]]:
    """Per operator id, the names of their regions (for the accounts page)."""
    rows = session.execute(
        select(OperatorRegion.operator_id, Region.name).join(
            Region, col(Region.id) == col(OperatorRegion.region_id)
        )
    ).all()
    names: dict[int, list[str]] = {}
    for operator_id, name in rows:
        names.setdefault(int(operator_id), []).append(str(name))
    return {k: sorted(v) for k, v in names.items()}


def set_approval_rule(session: Session, *, region_name: str, action_type: str, required: bool) -> None:
    """Require (or stop requiring) a second operator for launches of a type (`*`: any) in a region."""
    region = find_region(session, name=region_name)
    assert region.id is not None
    existing = session.exec(
        select(ApprovalRule).where(
            ApprovalRule.region_id == region.id, ApprovalRule.action_type == action_type
        )
    ).first()
    if required and existing is None:
        session.add(ApprovalRule(region_id=region.id, action_type=action_type))
    elif not required and existing is not None:
        session.delete(existing)
    session.flush()


def approval_rules(session: Session) -> list[tuple[str, str]]:
    """Every four-eyes rule as (region name, action type or `*`), sorted."""
    rows = session.execute(
        select(Region.name, ApprovalRule.action_type).join(
            Region, col(Region.id) == col(ApprovalRule.region_id)
        )
    ).all()
    return sorted((str(name), str(kind)) for name, kind in rows)


def needs_approval(session: Session, *, action_type: str, touched: Iterable[str]) -> bool:
    """Whether a launch of this type touching these municipalities needs a second operator's approval."""
    codes = set(touched)
    rules = session.exec(
        select(Region)
        .join(ApprovalRule, col(ApprovalRule.region_id) == col(Region.id))
        .where(col(ApprovalRule.action_type).in_([action_type, ANY_TYPE]))
    ).all()
    return any(region.everywhere or codes & set(region.municipalities) for region in rules)


def grant_everywhere(session: Session, *, operator: Operator, now: datetime) -> None:
    """Give an account the whole country (the region is made when missing): a first admin, a demo."""
    assert operator.id is not None
    region = session.exec(select(Region).where(Region.name == EVERYWHERE)).first()
    if region is None:
        region = save_region(session, name=EVERYWHERE, municipalities=[], everywhere=True, now=now)
    assert region.id is not None
    if session.get(OperatorRegion, (operator.id, region.id)) is None:
        session.add(OperatorRegion(operator_id=operator.id, region_id=region.id))
        session.flush()
