"""Rings in the control room over HTTP: the new-action form takes them (radii, minutes) with a Dutch
reason for each mistake; the live page shows their schedule and stops them."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import select

from storage.db import SessionFactory
from storage.models import Action, AuditEvent
from tests.conftest import FixedClock
from tests.controlroom.conftest import app, client, cr, csrf_of, login, runtime, tips  # noqa: F401  (fixtures)
from tests.controlroom.test_actions_pages import _create


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"area_kind": "municipalities", "municipalities": "Enschede"}, "Ringen vergroten een cirkel"),
        (
            {"ring_radii": "6000, 4000"},
            "Elke ring moet groter zijn dan de cirkel (2000 m) en dan de ring ervoor.",
        ),
        ({"ring_radii": "1500"}, "Elke ring moet groter zijn dan de cirkel (2000 m)"),
        ({"ring_radii": "vier km"}, "Schrijf de ringen als stralen in meters"),
        ({"ring_radii": "4000, 90000"}, "hoogstens 50 km"),
        ({"ring_minutes": "0"}, "Vul de minuten tussen de ringen in"),
        ({"ring_minutes": "kwartier"}, "Vul de minuten tussen de ringen in"),
    ],
    ids=[
        "not-a-circle",
        "shrinking",
        "inside-the-circle",
        "not-numbers",
        "too-large",
        "no-minutes",
        "nan-minutes",
    ],
)
async def test_rings_the_form_cannot_take_are_refused_in_dutch(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
    fields: dict[str, str],
    error: str,
) -> None:
    await login(client, "olga")
    refused = await _create(client, **{"ring_radii": "4000, 6000", "ring_minutes": "15", **fields})
    assert refused.status_code == 422
    assert error in refused.text
    assert f'value="{fields.get("ring_radii", "4000, 6000")}"' in refused.text, "what was typed stays"
    with sessions() as session:
        assert session.exec(select(Action)).all() == []


async def test_rings_from_the_form_run_on_the_live_page_and_stop_there(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
    clock: FixedClock,
) -> None:
    await login(client, "olga")
    created = await _create(client, ring_radii="4000; 6000", ring_minutes="15")
    assert created.status_code == 303, created.text
    path = created.headers["location"]
    action_id = int(path.rsplit("/", 1)[1])
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        assert action.rings == {"radii_m": [4000.0, 6000.0], "every_minutes": 15}
    edit = await client.get(f"{path}/edit")
    assert 'value="4000, 6000"' in edit.text and 'name="ring_minutes" type="number"' in edit.text
    preview = await client.get(path)
    launched = await client.post(
        f"{path}/launch", data={"csrf_token": csrf_of(preview.text), "confirm": "yes"}
    )
    assert launched.status_code == 303
    # The clock says 14:30 UTC: 15:30 in Amsterdam; the rings are due at 15:45 and 16:00.
    live = await client.get(path)
    rings = re.findall(r'<li data-ring="(\d)" data-state="(\w+)">([^<]*)', live.text)
    assert rings == [
        ("1", "next", "Ring 1: 4000 m om 15:45 · "),
        ("2", "later", "Ring 2: 6000 m om 16:00"),
    ]
    assert "Volgende ring om 15:45." in live.text
    stopped = await client.post(f"{path}/rings/stop", data={"csrf_token": csrf_of(live.text)})
    assert stopped.status_code == 303
    shown = await client.get(stopped.headers["location"])
    assert "Ringen gestopt: het gebied groeit niet meer vanzelf." in shown.text
    assert "Ringen gestopt om 15:30." in shown.text
    assert 'id="rings-stop-form"' not in shown.text
    assert re.findall(r'<li data-ring="(\d)" data-state="(\w+)"', shown.text) == [
        ("1", "skipped"),
        ("2", "skipped"),
    ]
    with sessions() as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.event == "action_rings_stopped")).all()
    assert event.actor == "operator:olga"
    again = await client.post(f"{path}/rings/stop", data={"csrf_token": csrf_of(shown.text)})
    assert "Er zijn geen ringen meer om te stoppen." in (await client.get(again.headers["location"])).text
    assert (await client.post(f"{path}/rings/stop", data={})).status_code == 403
