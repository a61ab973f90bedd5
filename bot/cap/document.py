"""CAP 1.2 documents: writing an action as an alert, reading an alert into the fields of a draft action.

Out: `alert_xml(action, ...)` gives msgType Alert for a draft or a running action (status `Draft` for a
draft that was never launched), Update for a closed one (the closing text as description, `references`
pointing at the alert) and Cancel for a cancelled one; a running action with updates is an Update too, its
description followed by the updates' texts, its instruction the latest given, referencing the alert.
The area is a `circle` ("lat,lon radius_km"), one `polygon` per outer ring ("lat,lon lat,lon ...",
closed; CAP has no holes, so a GeoJSON hole is left out), or the municipalities as `geocode` CBS codes.
Our action type travels as an `eventCode` and the operator's ranking point as a `parameter`, so that
reading our own alert back gives the same fields.

In: `read_cap(body)` parses without entities, DTDs or network access and validates against the OASIS
schema, once. An Alert maps the first Dutch `info` (else the first) onto `CapAlert`; anything it cannot
map raises `CapError` with a message the API answers with 422. An Update or Cancel becomes a
`CapChangeMessage`: its `references` as triples, the Dutch info's description and instruction (a Cancel
may have no info); `our_message` says which of our messages (alert, update n, close or cancel) an
identifier names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

from storage.models import Action, ActionStatus, ActionType, ActionUpdate, Certainty, Severity, Urgency
from storage.targeting import Circle, InvalidArea, Municipalities, Polygon, parse_area

NS = "urn:oasis:names:tc:emergency:cap:1.2"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MEDIA_TYPE = "application/cap+xml"
SCHEMA_PATH = Path(__file__).with_name("CAP-v1.2.xsd")
MAX_BYTES = 512 * 1024
TYPE_CODE = "burgernet:type"
CENTRE_PARAMETER = "burgernet:centre"
CBS_GEOCODE = "CBS-gemeentecode"
# CAP categories of our action types; reading back, the eventCode wins and the category is a fallback.
CATEGORIES: Mapping[ActionType, str] = {
    ActionType.MISSING_PERSON: "Rescue",
    ActionType.ROBBERY: "Security",
    ActionType.HIT_AND_RUN: "Security",
    ActionType.BURGLARY: "Security",
    ActionType.STOLEN_VEHICLE: "Security",
    ActionType.OTHER: "Other",
}


class CapError(ValueError):
    """A CAP document that is not valid CAP 1.2, or that we cannot turn into an action."""


@dataclass(frozen=True)
class CapAlert:
    """The fields of an incoming CAP alert that make a draft action."""

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    references: str
    type: ActionType
    headline: str
    description: str
    instruction: str
    area: dict[str, Any]
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    expires_at: datetime | None
    note: str = ""


@dataclass(frozen=True)
class CapReference:
    """One earlier message an alert's `references` names: its sender, identifier and sent time."""

    sender: str
    identifier: str
    sent: datetime


@dataclass(frozen=True)
class OurMessage:
    """Which of our messages an identifier names: an action's alert, its `update_no`th update, or its
    end (`ended`: closed or cancelled)."""

    code: str
    update_no: int | None = None
    ended: str | None = None


# The identifiers `alert_xml` gives: the alert, an update of it, its close or cancel.
_OUR_IDENTIFIER = re.compile(r"burgernet-(BN-[A-Z0-9]+)(?:-update-([1-9][0-9]{0,8})|-(closed|cancelled))?")


def references_of(text: str) -> list[CapReference]:
    """The triples of a CAP `references` ("sender,identifier,sent", separated by spaces). Raises CapError."""
    found = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(f"references: {triple[:120]!r} is not 'sender,identifier,sent'")
        try:
            sent = datetime.fromisoformat(parts[2])
        except ValueError as exc:
            raise CapError(f"references: {parts[2][:40]!r} is not a CAP dateTime") from exc
        if sent.tzinfo is None:
            raise CapError(f"references: {parts[2][:40]!r} has no time zone")
        found.append(CapReference(parts[0], parts[1], sent))
    return found


def our_message(identifier: str) -> OurMessage | None:
    """Which of our messages the identifier names, or None when it is none of ours."""
    match = _OUR_IDENTIFIER.fullmatch(identifier)
    if match is None:
        return None
    code, number, ended = match.groups()
    return OurMessage(code, int(number) if number else None, ended)


@cache
def schema() -> etree.XMLSchema:
    """The OASIS CAP 1.2 schema, loaded once."""
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), _parser()))


def _parser() -> etree.XMLParser:
    # Untrusted input: no entity expansion, no DTD, no network, no huge trees.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def cap_time(moment: datetime) -> str:
    """A CAP dateTime: seconds, an explicit offset ("+00:00", never "Z")."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def identifier_of(action: Action) -> str:
    """The identifier of an action's alert message."""
    return f"burgernet-{action.code}"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NS}}}{name}")
    if text is not None:
        # XML 1.0 cannot hold most control characters; an operator's pasted text may carry them.
        element.text = _NOT_XML.sub("", text)
    return element


def _number(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _area(info: etree._Element, action: Action, area_desc: str) -> None:
    area = parse_area(action.area)
    element = _sub(info, "area")
    _sub(element, "areaDesc", area_desc)
    if isinstance(area, Circle):
        _sub(element, "circle", f"{_number(area.lat)},{_number(area.lon)} {_number(area.radius_m / 1000)}")
    elif isinstance(area, Polygon):
        for rings in area.parts:
            _sub(element, "polygon", " ".join(f"{_number(lat)},{_number(lon)}" for lat, lon in rings[0]))
    else:
        for code in area.codes:
            geocode = _sub(element, "geocode")
            _sub(geocode, "valueName", CBS_GEOCODE)
            _sub(geocode, "value", code)


def alert_xml(
    action: Action,
    *,
    sender: str,
    web: str,
    event: str,
    area_desc: str,
    exercise: bool = False,
    updates: Sequence[ActionUpdate] = (),
) -> bytes:
    """The action as a CAP 1.2 alert (UTF-8 XML), valid against the OASIS schema; `updates` are the
    running action's updates, first first."""
    root = etree.Element(f"{{{NS}}}alert", nsmap={None: NS})
    alert_sent = action.launched_at or action.created_at
    ended = action.status in (ActionStatus.CLOSED, ActionStatus.CANCELLED)
    updated = not ended and action.status is ActionStatus.ACTIVE and bool(updates)
    if ended:
        _sub(root, "identifier", f"{identifier_of(action)}-{action.status.value}")
    elif updated:
        _sub(root, "identifier", f"{identifier_of(action)}-update-{updates[-1].number}")
    else:
        _sub(root, "identifier", identifier_of(action))
    _sub(root, "sender", sender)
    if ended:
        _sub(root, "sent", cap_time(action.closed_at or alert_sent))
    else:
        _sub(root, "sent", cap_time(updates[-1].created_at if updated else alert_sent))
    if action.status == ActionStatus.DRAFT:
        _sub(root, "status", "Draft")
    else:
        _sub(root, "status", "Exercise" if exercise else "Actual")
    msg_type = {ActionStatus.CLOSED: "Update", ActionStatus.CANCELLED: "Cancel"}.get(action.status, "Alert")
    _sub(root, "msgType", "Update" if updated else msg_type)
    _sub(root, "scope", "Public")
    if ended or updated:
        _sub(root, "references", f"{sender},{identifier_of(action)},{cap_time(alert_sent)}")
    info = _sub(root, "info")
    _sub(info, "language", "nl-NL")
    _sub(info, "category", CATEGORIES[action.type])
    _sub(info, "event", event)
    _sub(info, "urgency", action.urgency.value.capitalize())
    _sub(info, "severity", action.severity.value.capitalize())
    _sub(info, "certainty", action.certainty.value.capitalize())
    code = _sub(info, "eventCode")
    _sub(code, "valueName", TYPE_CODE)
    _sub(code, "value", action.type.value)
    if action.launched_at is not None:
        _sub(info, "effective", cap_time(action.launched_at))
    _sub(info, "expires", cap_time(action.closed_at if ended and action.closed_at else action.expires_at))
    _sub(info, "senderName", "Burgernet")
    _sub(info, "headline", action.headline)
    description = action.closing_text if ended and action.closing_text else action.description
    instruction = action.instruction
    if updated:
        # An Update replaces what the receiver showed: the whole story so far, the newest instruction.
        description = "\n\n".join([description, *(u.text for u in updates)])
        instruction = next((u.instruction for u in reversed(updates) if u.instruction), instruction)
    _sub(info, "description", description)
    if instruction:
        _sub(info, "instruction", instruction)
    _sub(info, "web", web)
    centre = action.area.get("centre")
    if isinstance(centre, Mapping):
        parameter = _sub(info, "parameter")
        _sub(parameter, "valueName", CENTRE_PARAMETER)
        _sub(parameter, "value", f"{_number(float(centre['lat']))},{_number(float(centre['lon']))}")
    _area(info, action, area_desc)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def validation_errors(document: bytes) -> list[str]:
    """What makes a document invalid CAP 1.2 (empty when it is valid)."""
    return _checked(document)[1]


def _checked(document: bytes) -> tuple[etree._Element | None, list[str]]:
    """The parsed document and what makes it invalid CAP 1.2: parsed and validated once."""
    try:
        tree = etree.fromstring(document, _parser())
    except etree.XMLSyntaxError as exc:
        return None, [f"not well-formed XML: {exc}"]
    if tree.getroottree().docinfo.doctype:
        # CAP needs no DTD; one here can only be meant to declare entities.
        return None, ["a DOCTYPE (DTD) is not allowed in CAP"]
    if schema().validate(tree):
        return tree, []
    return None, [f"line {e.line}: {e.message}" for e in schema().error_log]


def _text(parent: etree._Element, name: str) -> str:
    found = parent.find(f"{{{NS}}}{name}")
    return (found.text or "").strip() if found is not None else ""


def _pairs(parent: etree._Element, name: str) -> dict[str, str]:
    return {_text(pair, "valueName"): _text(pair, "value") for pair in parent.findall(f"{{{NS}}}{name}")}


def _enum(kind: type[Urgency] | type[Severity] | type[Certainty], value: str) -> Any:
    try:
        return kind(value.lower())
    except ValueError as exc:
        raise CapError(f"{kind.__name__.lower()} {value!r} is not supported") from exc


def _point(text: str, where: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError as exc:
        raise CapError(f"{where}: {text!r} is not a 'lat,lon' pair") from exc
    return lat, lon


def _read_area(info: etree._Element) -> dict[str, Any]:
    polygons: list[list[list[float]]] = []
    circles: list[str] = []
    codes: list[str] = []
    for area in info.findall(f"{{{NS}}}area"):
        for polygon in area.findall(f"{{{NS}}}polygon"):
            polygons.append([list(_point(p, "polygon")) for p in (polygon.text or "").split()])
        circles.extend((c.text or "").strip() for c in area.findall(f"{{{NS}}}circle"))
        for geocode in area.findall(f"{{{NS}}}geocode"):
            if _text(geocode, "valueName") == CBS_GEOCODE:
                codes.append(_text(geocode, "value"))
    kinds = sum(1 for found in (polygons, circles, codes) if found)
    if kinds == 0:
        raise CapError(f"the alert has no area we can use: a polygon, a circle or a {CBS_GEOCODE} geocode")
    if kinds > 1:
        raise CapError(
            "an alert with more than one kind of area (polygons, circles, geocodes) is not supported"
        )
    if polygons:
        if len(polygons) == 1:
            return {"polygon": polygons[0]}
        return {
            "geojson": {
                "type": "MultiPolygon",
                "coordinates": [[[[lon, lat] for lat, lon in ring]] for ring in polygons],
            }
        }
    if circles:
        if len(circles) > 1:
            raise CapError("an alert with more than one circle is not supported; send a polygon instead")
        try:
            point, radius = circles[0].split()
            lat, lon = _point(point, "circle")
            return {"circle": {"lat": lat, "lon": lon, "radius_m": round(float(radius) * 1000, 3)}}
        except ValueError as exc:
            raise CapError(f"circle {circles[0]!r} is not 'lat,lon radius_km'") from exc
    return {"municipalities": codes}


def _valid_root(document: bytes) -> etree._Element:
    if len(document) > MAX_BYTES:
        raise CapError(f"the document is larger than {MAX_BYTES // 1024} KB")
    root, problems = _checked(document)
    if root is None:
        raise CapError("not valid CAP 1.2: " + "; ".join(problems[:5]))
    return root


def _dutch_info(root: etree._Element) -> etree._Element | None:
    infos = root.findall(f"{{{NS}}}info")
    return next(
        (i for i in infos if _text(i, "language").lower().startswith("nl")), infos[0] if infos else None
    )


@dataclass(frozen=True)
class CapChangeMessage:
    """An incoming CAP Update or Cancel: which message it is, what it references, and what it says (the
    Dutch info's description and instruction; a Cancel needs no info at all)."""

    identifier: str
    sender: str
    sent: datetime
    msg_type: str
    references: list[CapReference]
    description: str
    instruction: str
    note: str


def read_cap(document: bytes) -> CapAlert | CapChangeMessage:
    """An incoming CAP 1.2 Alert, or an Update or Cancel, validated and mapped. Raises CapError (also for
    the message types taken nowhere: Ack and Error)."""
    root = _valid_root(document)
    msg_type = _text(root, "msgType")
    if msg_type in ("Update", "Cancel"):
        return _change_of(root, msg_type)
    if msg_type == "Alert":
        return _alert_of(root)
    raise CapError(f"a CAP {msg_type} is not taken here: send an Alert, Update or Cancel")


def _change_of(root: etree._Element, msg_type: str) -> CapChangeMessage:
    info = _dutch_info(root)
    if msg_type == "Update" and info is None:
        raise CapError("an Update needs an info block with what changed")
    description = ""
    if info is not None:
        description = _text(info, "description") or _text(info, "headline")
    return CapChangeMessage(
        identifier=_text(root, "identifier"),
        sender=_text(root, "sender"),
        sent=datetime.fromisoformat(_text(root, "sent")),
        msg_type=msg_type,
        references=references_of(_text(root, "references")),
        description=description,
        instruction=_text(info, "instruction") if info is not None else "",
        note=_text(root, "note"),
    )


def _alert_of(root: etree._Element) -> CapAlert:
    info = _dutch_info(root)
    if info is None:
        raise CapError("the alert has no info block")
    codes = _pairs(info, "eventCode")
    try:
        kind = ActionType(codes[TYPE_CODE]) if TYPE_CODE in codes else None
    except ValueError as exc:
        raise CapError(f"{TYPE_CODE} {codes[TYPE_CODE]!r} is not an action type") from exc
    if kind is None:
        categories = {(c.text or "").strip() for c in info.findall(f"{{{NS}}}category")}
        kind = ActionType.MISSING_PERSON if categories == {"Rescue"} else ActionType.OTHER
    area = _read_area(info)
    centre = _pairs(info, "parameter").get(CENTRE_PARAMETER)
    if centre and ("polygon" in area or "geojson" in area):
        lat, lon = _point(centre, CENTRE_PARAMETER)
        area["centre"] = {"lat": lat, "lon": lon}
    try:
        parse_area(area)
    except InvalidArea as exc:
        raise CapError(f"area: {exc}") from exc
    expires = _text(info, "expires")
    headline = _text(info, "headline") or _text(info, "event")
    return CapAlert(
        identifier=_text(root, "identifier"),
        sender=_text(root, "sender"),
        sent=datetime.fromisoformat(_text(root, "sent")),
        status=_text(root, "status"),
        msg_type=_text(root, "msgType"),
        references=_text(root, "references"),
        type=kind,
        headline=headline,
        description=_text(info, "description") or headline,
        instruction=_text(info, "instruction"),
        area=area,
        urgency=_enum(Urgency, _text(info, "urgency")),
        severity=_enum(Severity, _text(info, "severity")),
        certainty=_enum(Certainty, _text(info, "certainty")),
        expires_at=datetime.fromisoformat(expires) if expires else None,
        note=_text(root, "note"),
    )


def describe_area(area: Circle | Municipalities | Polygon) -> dict[str, Any]:
    """The placeholders of an area's description: its kind and its figures."""
    if isinstance(area, Circle):
        return {
            "kind": "circle",
            "km": _number(round(area.radius_m / 1000, 2)),
            "lat": area.lat,
            "lon": area.lon,
        }
    if isinstance(area, Polygon):
        return {"kind": "polygon", "corners": sum(len(rings[0]) - 1 for rings in area.parts)}
    return {"kind": "municipalities", "codes": area.codes}
