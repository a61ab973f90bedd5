"""The live page's update, widen and cancel forms over HTTP: what the operator typed stays and a Dutch
reason shows when a form is refused; nothing is stored or sent then."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import select

from storage.db import SessionFactory
from storage.models import Action, ActionPhoto, ActionStatus, ActionUpdate, AuditEvent
from tests.actions.photo_files import TEXT_FILE, jpeg_with_exif
from tests.controlroom.conftest import app, client, cr, csrf_of, login, runtime, tips  # noqa: F401  (fixtures)
from tests.controlroom.test_actions_pages import _create, _launched


@pytest.mark.parametrize(
    ("path", "form", "error", "kept"),
    [
        ("updates", {"text": "  ", "instruction": "Bel 112."}, "Vul in wat er nieuw is.", "Bel 112."),
        (
            "updates",
            {"text": "Een man met een lange grijze jas en een hoed. " * 12},
            "De aanvulling past niet in twee sms-delen",
            "lange grijze jas",
        ),
        ("cancel", {"reason": "Verkeerd gebied."}, "vink aan dat de actie per ongeluk", "Verkeerd gebied."),
        ("cancel", {"reason": "", "confirm": "yes"}, "Vul een reden in", 'id="cancel-error"'),
        ("widen", {"radius_m": "1500"}, "De nieuwe cirkel moet de oude helemaal bevatten", "1500"),
        ("widen", {"radius_m": "2000"}, "Dit is hetzelfde gebied", "2000"),
        ("widen", {"radius_m": "veel"}, "Vul de nieuwe straal in als getal", "veel"),
    ],
    ids=[
        *("blank-update", "update-too-long", "cancel-without-tick", "cancel-without-reason"),
        *("smaller", "same", "nan"),
    ],
)
async def test_a_refused_form_says_why_in_dutch_and_changes_nothing(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
    path: str,
    form: dict[str, str],
    error: str,
    kept: str,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    refused = await client.post(
        f"/controlroom/actions/{action_id}/{path}", data={"csrf_token": csrf_of(page.text), **form}
    )
    assert refused.status_code == 422
    assert error in refused.text
    assert kept in refused.text
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None and action.status is ActionStatus.ACTIVE
        assert session.exec(select(ActionUpdate)).all() == []
        events = {e.event for e in session.exec(select(AuditEvent)).all()}
    assert not events & {"action_updated", "action_cancelled", "action_widened"}


async def test_an_update_from_the_live_page_is_stored_audited_and_listed(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    sent = await client.post(
        f"/controlroom/actions/{action_id}/updates",
        data={"csrf_token": csrf_of(page.text), "text": "Hij draagt een rode pet.", "instruction": ""},
    )
    assert sent.status_code == 303
    shown = await client.get(sent.headers["location"])
    assert "Aanvulling 1 verstuurd naar 0 ontvangers." in shown.text
    assert 'id="updates"' in shown.text and "Hij draagt een rode pet." in shown.text
    with sessions() as session:
        [update] = session.exec(select(ActionUpdate)).all()
        [event] = session.exec(select(AuditEvent).where(AuditEvent.event == "action_updated")).all()
    assert (update.created_by, update.instruction) == ("operator:olga", "")
    assert event.actor == "operator:olga"
    refused = await client.post(f"/controlroom/actions/{action_id}/updates", data={"text": "zonder token"})
    assert refused.status_code == 403


def _ring(half_m: float, lat: float = 52.2215, lon: float = 6.8937) -> str:
    """A closed square as the form's polygon field holds it ("lat,lon lat,lon ..."), `half_m` to a side."""
    dlat, dlon = half_m / 111_195.0, half_m / 111_195.0 / 0.6124
    corners = [
        (lat - dlat, lon - dlon),
        (lat - dlat, lon + dlon),
        (lat + dlat, lon + dlon),
        (lat + dlat, lon - dlon),
    ]
    return " ".join(f"{a:.6f},{b:.6f}" for a, b in [*corners, corners[0]])


async def _launched_with(http: httpx.AsyncClient, **fields: str) -> int:
    created = await _create(http, **fields)
    assert created.status_code == 303, created.text
    path = created.headers["location"]
    preview = await http.get(path)
    launched = await http.post(f"{path}/launch", data={"csrf_token": csrf_of(preview.text), "confirm": "yes"})
    assert launched.status_code == 303
    return int(path.rsplit("/", 1)[1])


async def test_a_circle_widens_to_a_drawn_polygon_ranked_from_the_old_centre(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched_with(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    assert 'id="w-polygon-tools"' in page.text and 'name="area_kind" value="polygon"' in page.text
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        centre = action.area["circle"]
    # The circle has 2 km; a square 1.5 km to each side does not hold it, one of 3 km does.
    data = {"csrf_token": csrf_of(page.text), "area_kind": "polygon", "radius_m": "2000"}
    small = _ring(1500, centre["lat"], centre["lon"])
    refused = await client.post(f"/controlroom/actions/{action_id}/widen", data={**data, "polygon": small})
    assert refused.status_code == 422
    assert "een deel van het oude gebied valt buiten de veelhoek" in refused.text
    assert small in refused.text, "the drawn polygon stays in the form"
    assert re.search(r'value="polygon" checked', refused.text), "and the polygon stays chosen"
    unclosed = " ".join(small.split()[:-1])
    refused = await client.post(f"/controlroom/actions/{action_id}/widen", data={**data, "polygon": unclosed})
    assert refused.status_code == 422 and "De veelhoek is niet gesloten" in refused.text
    large = _ring(3000, centre["lat"], centre["lon"])
    widened = await client.post(f"/controlroom/actions/{action_id}/widen", data={**data, "polygon": large})
    assert widened.status_code == 303, widened.text
    shown = await client.get(widened.headers["location"])
    assert "Gebied vergroot: 0 nieuwe ontvangers." in shown.text
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        [event] = session.exec(select(AuditEvent).where(AuditEvent.event == "action_widened")).all()
    assert action.area["polygon"] == [[float(x) for x in p.split(",")] for p in large.split()]
    assert action.area["centre"] == {"lat": centre["lat"], "lon": centre["lon"]}
    assert event.detail["from"] == {"circle": centre}
    # The polygon widens again, to a circle around its centre, from the same form.
    page = await client.get(f"/controlroom/actions/{action_id}")
    assert "Straal in meters rond het midden van de veelhoek" in page.text
    # Its corners lie 4.24 km from the centre: 4 km is refused, 5 km holds them.
    circle = {"csrf_token": csrf_of(page.text), "area_kind": "circle", "radius_m": "4000"}
    refused = await client.post(f"/controlroom/actions/{action_id}/widen", data=circle)
    assert refused.status_code == 422 and "De nieuwe cirkel moet de oude helemaal bevatten" in refused.text
    circle["radius_m"] = "5000"
    widened = await client.post(f"/controlroom/actions/{action_id}/widen", data=circle)
    assert widened.status_code == 303, widened.text
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
    assert action.area == {"circle": {"lat": centre["lat"], "lon": centre["lon"], "radius_m": 5000.0}}


async def test_an_update_with_a_photo_replaces_the_actions_photo(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    assert 'id="u-photo"' in page.text and 'enctype="multipart/form-data"' in page.text
    form = {"csrf_token": csrf_of(page.text), "text": "Een nieuwe foto van Tim.", "instruction": ""}
    refused = await client.post(
        f"/controlroom/actions/{action_id}/updates",
        data=form,
        files={"photo": ("tim.jpg", TEXT_FILE, "image/jpeg")},
    )
    assert refused.status_code == 422
    assert "De foto moet een JPEG- of PNG-afbeelding zijn." in refused.text
    assert "Een nieuwe foto van Tim." in refused.text
    sent = await client.post(
        f"/controlroom/actions/{action_id}/updates",
        data=form,
        files={"photo": ("tim.jpg", jpeg_with_exif(), "image/jpeg")},
    )
    assert sent.status_code == 303, sent.text
    with sessions() as session:
        [update] = session.exec(select(ActionUpdate)).all()
        [photo] = session.exec(select(ActionPhoto)).all()
        action = session.get(Action, action_id)
        [event] = session.exec(select(AuditEvent).where(AuditEvent.event == "action_updated")).all()
    assert action is not None and action.has_photo
    assert photo.created_at == update.created_at
    assert event.detail["photo"] is True
