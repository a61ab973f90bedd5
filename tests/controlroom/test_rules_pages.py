"""Who may launch, in the control room: a region that does not cover the area is refused with a 403 the
operator can read (Dutch or English); the exercise checkbox makes an exercise draft."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from storage.db import transaction
from storage.models import Action, ActionStatus, Operator
from storage.regions import save_region, set_operator_regions
from tests.controlroom.conftest import FakeRuntime, csrf_of, login, page_csrf


async def _draft(client: httpx.AsyncClient, radius_m: str, **fields: str) -> int:
    form = await client.get("/controlroom/actions/new")
    data = {
        "csrf_token": csrf_of(form.text),
        "type": "missing_person",
        "headline": "Vermist: jongen (8) in rode jas",
        "description": "Tim, 1.30 m, blond, rode jas.",
        "instruction": "Bel 112 als u hem ziet.",
        "area_kind": "circle",
        "postcode": "7511",
        "radius_m": radius_m,
        "expires_minutes": "120",
        **fields,
    }
    created = await client.post("/controlroom/actions", data=data)
    assert created.status_code == 303, created.text
    return int(created.headers["location"].rsplit("/", 1)[1])


@pytest.mark.parametrize(
    ("lang", "message"),
    [
        ("nl", "U mag hier niet uitgeven: uw regio dekt Dinkelland, Hengelo (O.), Losser, Oldenzaal niet."),
        (
            "en",
            "You may not launch here: your region does not cover Dinkelland, Hengelo (O.), Losser, Oldenzaal",
        ),
    ],
)
async def test_a_launch_outside_the_operators_region_is_refused_readably(
    client: httpx.AsyncClient, runtime: FakeRuntime, lang: str, message: str
) -> None:
    with transaction(runtime.sessions) as session:
        save_region(session, name="Enschede", municipalities=["0153"], now=runtime.clock())
        olga = session.exec(select(Operator).where(Operator.username == "olga")).one()
        set_operator_regions(session, operator=olga, names=["Enschede"])
    await login(client, "olga")
    if lang == "en":
        csrf = await page_csrf(client)
        await client.post(
            "/controlroom/language", data={"lang": "en", "back": "/controlroom/figures", "csrf_token": csrf}
        )
    wide = await _draft(client, "12000")
    preview = await client.get(f"/controlroom/actions/{wide}")
    assert message in preview.text.replace("&#39;", "'")
    assert 'id="launch" disabled' in preview.text
    csrf = csrf_of(preview.text)
    refused = await client.post(
        f"/controlroom/actions/{wide}/launch", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert refused.status_code == 403
    assert message in refused.text.replace("&#39;", "'")
    near = await _draft(client, "3000", exercise="yes")
    launched = await client.post(
        f"/controlroom/actions/{near}/launch", data={"csrf_token": csrf, "confirm": "yes"}
    )
    assert launched.status_code == 303
    with runtime.sessions() as session:
        stored = {a.id: (a.status, a.exercise) for a in session.exec(select(Action))}
    assert stored == {wide: (ActionStatus.DRAFT, False), near: (ActionStatus.ACTIVE, True)}
