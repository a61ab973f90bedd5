"""Every state-changing route of the control room and the REST API writes an audit row naming who did
it: the routes are read from the whole app as `serve` builds it, so a new route that is not walked here
fails the test until it is (and is audited)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlmodel import col, select

from storage.db import transaction
from storage.models import AuditEvent, Operator
from storage.regions import ANY_TYPE, EVERYWHERE, set_approval_rule
from tests.conftest import FixedClock
from tests.controlroom.conftest import PASSWORD, csrf_of
from tests.controlroom.whole_app import TOKEN, Whole, build_whole, client_for, log_in

CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Not an operator's action on any data: the page language of the visitor's own session, and look-ups that
# are POSTs only so that what the operator types (an address, a postcode, an alert's text) stays out of
# the URL; they change nothing.
NOT_AUDITED = {
    ("POST", "/controlroom/language"),
    ("POST", "/controlroom/places"),
    ("POST", "/controlroom/postcode"),
    ("POST", "/controlroom/texts/alert"),
}
API = {"Authorization": f"Bearer {TOKEN}"}
PHOTO = (Path(__file__).parents[1] / "channels" / "testdata" / "media" / "photo.jpg").read_bytes()
ACTION_FORM = {
    "type": "missing_person", "headline": "Vermist: Sem (6), rode jas", "description": "Sem is weg.",
    "instruction": "Bel 112.", "area_kind": "circle", "lat": "52.22", "lon": "6.89", "radius_m": "2000",
    "postcode": "", "municipalities": "", "expires_minutes": "120",
}  # fmt: skip


@pytest.fixture
async def whole(database_url: str, clock: FixedClock) -> AsyncIterator[Whole]:
    """The whole app with accounts, an active action with a tip, and a draft."""
    built = await build_whole(
        database_url, clock, headline="Vermist: Noah", tip_text="Ik zag hem", draft_headline="Overval"
    )
    yield built
    built.runtime.engine.dispose()


def changing_routes(whole: Whole) -> set[tuple[str, str]]:
    """Every state-changing (method, path) under /controlroom and /api/v1, read from the app."""
    found = set()
    for route in iter_route_contexts(whole.app.routes):
        path = route.path or ""
        if path.startswith(("/controlroom", "/api/v1")):
            found.update((m, path) for m in (route.methods or set()) & CHANGING)
    return found


def audit_rows(whole: Whole, after: int) -> list[AuditEvent]:
    """Audit rows with an id above `after`."""
    with whole.runtime.sessions() as session:
        return list(
            session.exec(select(AuditEvent).where(col(AuditEvent.id) > after).order_by(col(AuditEvent.id)))
        )


def last_id(whole: Whole) -> int:
    """The newest audit row's id (0 when none)."""
    rows = audit_rows(whole, 0)
    return rows[-1].id or 0 if rows else 0


async def test_every_state_changing_route_is_audited(whole: Whole, clock: FixedClock) -> None:
    with whole.runtime.sessions() as session:
        olga = session.exec(select(Operator.id).where(Operator.username == "olga")).one()
    api_body = {
        "type": "missing_person",
        "headline": "Vermist: Tim (8)",
        "description": "Tim is weg.",
        "instruction": "Bel 112.",
        "area": {"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 2000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    made: dict[str, int] = {}
    walked: set[tuple[str, str]] = set()
    wrong: list[Any] = []
    async with client_for(whole.app) as http:
        csrf = await log_in(http, "ada")

        def form(**fields: str) -> dict[str, str]:
            return {**fields, "csrf_token": csrf}

        async def run(method: str, template: str, event: str, actor: str, send: Any) -> None:
            walked.add((method, template))
            before = last_id(whole)
            response = await send()
            rows = audit_rows(whole, before)
            if response.status_code >= 400 or not any(r.event == event and r.actor == actor for r in rows):
                wrong.append((template, response.status_code, [(r.actor, r.event) for r in rows]))
            return response

        cr = "/controlroom"
        act = f"{cr}/actions/{{action_id}}"
        tips = f"{act}/tips/{{tip_id}}"
        ops = f"{cr}/operators/{{operator_id}}"
        created = await run(
            "POST",
            f"{cr}/actions",
            "action_created",
            "operator:ada",
            lambda: http.post(f"{cr}/actions", data=form(**ACTION_FORM)),
        )
        made["draft"] = int(created.headers["location"].rsplit("/", 1)[1])
        draft, action, tip = made["draft"], whole.action_id, whole.tip_id
        steps = [
            ("POST", f"{act}/edit", "action_edited", f"{cr}/actions/{draft}/edit", form(**ACTION_FORM)),
            (
                "POST",
                f"{act}/delete",
                "action_deleted",
                f"{cr}/actions/{whole.draft_id}/delete",
                form(confirm="yes"),
            ),
            ("POST", f"{act}/launch", "action_launched", f"{cr}/actions/{draft}/launch", form(confirm="yes")),
            (
                "POST",
                f"{tips}/mark",
                "tip_marked",
                f"{cr}/actions/{action}/tips/{tip}/mark",
                form(useful="yes"),
            ),
            (
                "POST",
                f"{tips}/reply",
                "tip_replied",
                f"{cr}/actions/{action}/tips/{tip}/reply",
                form(text="Welke kleur had zijn jas?"),
            ),
            ("POST", f"{tips}/phone", "tip_phone_viewed", f"{cr}/actions/{action}/tips/{tip}/phone", form()),
            (
                "POST",
                f"{act}/updates",
                "action_updated",
                f"{cr}/actions/{draft}/updates",
                form(text="Hij draagt een rode pet.", instruction=""),
            ),
            ("POST", f"{act}/widen", "action_widened", f"{cr}/actions/{draft}/widen", form(radius_m="3000")),
            (
                "POST",
                f"{act}/close",
                "action_closed",
                f"{cr}/actions/{draft}/close",
                form(outcome="found", closing_text="Sem is gevonden.", confirm="yes"),
            ),
            (
                "POST",
                f"{cr}/operators",
                "controlroom.operator_created",
                f"{cr}/operators",
                form(username="nieuw", password=PASSWORD, role="operator"),
            ),
            (
                "POST",
                f"{cr}/regions",
                "controlroom.region_saved",
                f"{cr}/regions",
                form(name="Twente", municipalities="Enschede, 0164"),
            ),
            (
                "POST",
                f"{ops}/regions",
                "controlroom.operator_regions_set",
                f"{cr}/operators/{olga}/regions",
                form(region="Twente"),
            ),
            (
                "POST",
                f"{cr}/four-eyes",
                "controlroom.four_eyes_set",
                f"{cr}/four-eyes",
                form(region="Twente", action_type="robbery", required="yes"),
            ),
            (
                "POST",
                f"{cr}/regions/delete",
                "controlroom.region_deleted",
                f"{cr}/regions/delete",
                form(name="Twente"),
            ),
            (
                "POST",
                f"{ops}/password",
                "controlroom.operator_password_reset",
                f"{cr}/operators/{olga}/password",
                form(password="a fresh new passphrase"),
            ),
            (
                "POST",
                f"{ops}/sessions/end",
                "controlroom.operator_sessions_ended",
                f"{cr}/operators/{olga}/sessions/end",
                form(),
            ),
            (
                "POST",
                f"{ops}/active",
                "controlroom.operator_deactivated",
                f"{cr}/operators/{olga}/active",
                form(active="no"),
            ),
        ]
        for method, template, event, url, data in steps:
            await run(
                method, template, event, "operator:ada", lambda url=url, data=data: http.post(url, data=data)
            )
        # The API: create, launch, reply to a tip, close.
        api = await run(
            "POST",
            "/api/v1/actions",
            "action_created",
            "api",
            lambda: http.post("/api/v1/actions", json=api_body, headers=API),
        )
        api_id = api.json()["id"]
        await run(
            "POST",
            "/api/v1/actions/{action_id}/launch",
            "action_launched",
            "api",
            lambda: http.post(f"/api/v1/actions/{api_id}/launch", headers=API),
        )
        await run(
            "POST",
            "/api/v1/tips/{tip_id}/reply",
            "tip_replied",
            "api",
            lambda: http.post(f"/api/v1/tips/{tip}/reply", json={"text": "Waar precies?"}, headers=API),
        )
        await run(
            "POST",
            "/api/v1/actions/{action_id}/close",
            "action_closed",
            "api",
            lambda: http.post(
                f"/api/v1/actions/{api_id}/close",
                json={"outcome": "found", "closing_text": "Gevonden."},
                headers=API,
            ),
        )

        # An update, a wider area and a cancel, by the API and (the cancel) by an operator.
        async def api_active() -> int:
            made = await http.post("/api/v1/actions", json=api_body, headers=API)
            launched = await http.post(f"/api/v1/actions/{made.json()['id']}/launch", headers=API)
            assert launched.status_code == 200, launched.text
            return int(made.json()["id"])

        running = await api_active()
        circle = api_body["area"]["circle"]
        for path, event, body in [
            ("updates", "action_updated", {"text": "Hij draagt een rode pet."}),
            (
                "widen",
                "action_widened",
                {"area": {"circle": {**circle, "radius_m": circle["radius_m"] + 500}}},
            ),
            ("cancel", "action_cancelled", {"reason": "Verkeerde persoon."}),
        ]:
            await run(
                "POST",
                f"/api/v1/actions/{{action_id}}/{path}",
                event,
                "api",
                lambda path=path, body=body: http.post(
                    f"/api/v1/actions/{running}/{path}", json=body, headers=API
                ),
            )
        mistake = await api_active()
        await run(
            "POST",
            f"{act}/cancel",
            "action_cancelled",
            "operator:ada",
            lambda: http.post(
                f"{cr}/actions/{mistake}/cancel", data=form(reason="Verkeerde persoon.", confirm="yes")
            ),
        )
        # Rings stopped, by the API and by an operator.
        ringed = {**api_body, "rings": {"radii_m": [circle["radius_m"] + 1000], "every_minutes": 10}}
        for template, actor, stop in [
            (
                "/api/v1/actions/{action_id}/rings/stop",
                "api",
                lambda i: http.post(f"/api/v1/actions/{i}/rings/stop", headers=API),
            ),
            (
                f"{act}/rings/stop",
                "operator:ada",
                lambda i: http.post(f"{cr}/actions/{i}/rings/stop", data=form()),
            ),
        ]:
            made_ringed = await http.post("/api/v1/actions", json=ringed, headers=API)
            ringed_id = int(made_ringed.json()["id"])
            assert (await http.post(f"/api/v1/actions/{ringed_id}/launch", headers=API)).status_code == 200
            await run("POST", template, "action_rings_stopped", actor, lambda stop=stop, i=ringed_id: stop(i))
        # A photo on an API draft: added twice (PUT, POST) and removed.
        photo_draft = (await http.post("/api/v1/actions", json=api_body, headers=API)).json()["id"]
        photo_url = f"/api/v1/actions/{photo_draft}/photo"
        for method, event in [("PUT", "action_photo_added"), ("POST", "action_photo_added")]:
            await run(
                method,
                "/api/v1/actions/{action_id}/photo",
                event,
                "api",
                lambda method=method: http.request(
                    method, photo_url, files={"photo": ("p.jpg", PHOTO, "image/jpeg")}, headers=API
                ),
            )
        await run(
            "DELETE",
            "/api/v1/actions/{action_id}/photo",
            "action_photo_removed",
            "api",
            lambda: http.delete(photo_url, headers=API),
        )
        # A dispatch system's CAP alert becomes a draft: our own running action's CAP, posted back.
        document = (await http.get(f"/api/v1/actions/{whole.action_id}/cap", headers=API)).content
        found = re.search(rb"<sender>([^<]+)</sender>", document)
        assert found is not None, document
        await run(
            "POST",
            "/api/v1/cap",
            "action_created",
            f"cap:{found.group(1).decode()}",
            lambda: http.post(
                "/api/v1/cap", content=document, headers={**API, "Content-Type": "application/cap+xml"}
            ),
        )
        # A CAP Update of a running action (our own, posted back) waits for an operator, who sends it;
        # a CAP Cancel of it is thrown away.
        evolving = await api_active()
        await http.post(f"/api/v1/actions/{evolving}/updates", json={"text": "Rode pet."}, headers=API)
        update_doc = (await http.get(f"/api/v1/actions/{evolving}/cap", headers=API)).content
        cap_headers = {**API, "Content-Type": "application/cap+xml"}
        cancel_doc = re.sub(
            rb"<identifier>[^<]+</identifier>", b"<identifier>mk-cancel-1</identifier>", update_doc
        ).replace(b"<msgType>Update</msgType>", b"<msgType>Cancel</msgType>")
        changes = []
        for document in (update_doc, cancel_doc):
            received = await run(
                "POST",
                "/api/v1/cap",
                "cap_change_received",
                f"cap:{found.group(1).decode()}",
                lambda document=document: http.post("/api/v1/cap", content=document, headers=cap_headers),
            )
            changes.append(received.json()["id"])
        for (verb, event), change in zip(
            [("confirm", "cap_change_confirmed"), ("discard", "cap_change_discarded")], changes, strict=True
        ):
            await run(
                "POST",
                f"{act}/cap-changes/{{change_id}}/{verb}",
                event,
                "operator:ada",
                lambda verb=verb, change=change: http.post(
                    f"{cr}/actions/{evolving}/cap-changes/{change}/{verb}", data=form()
                ),
            )
        # Four eyes everywhere from here on: a launch waits, another party approves or rejects it.
        with transaction(whole.runtime.sessions) as session:
            set_approval_rule(session, region_name=EVERYWHERE, action_type=ANY_TYPE, required=True)

        async def api_waiting() -> int:
            made = await http.post("/api/v1/actions", json=api_body, headers=API)
            waiting = await http.post(f"/api/v1/actions/{made.json()['id']}/launch", headers=API)
            assert waiting.status_code == 202, waiting.text
            return int(made.json()["id"])

        async def room_waiting() -> int:
            made = await http.post(f"{cr}/actions", data=form(**ACTION_FORM))
            waiting = int(made.headers["location"].rsplit("/", 1)[1])
            await http.post(f"{cr}/actions/{waiting}/launch", data=form(confirm="yes"))
            return waiting

        api_act, ada = "/api/v1/actions/{action_id}", "operator:ada"
        for template, event, actor, url, waiting in [
            (f"{act}/approve", "launch_approved", ada, f"{cr}/actions/{{}}/approve", api_waiting),
            (f"{act}/reject", "launch_rejected", ada, f"{cr}/actions/{{}}/reject", api_waiting),
            (f"{api_act}/approve", "launch_approved", "api", "/api/v1/actions/{}/approve", room_waiting),
            (f"{api_act}/reject", "launch_rejected", "api", "/api/v1/actions/{}/reject", room_waiting),
        ]:
            target = url.format(await waiting())
            if target.startswith("/api"):
                send = lambda target=target: http.post(target, json={"reason": "nee"}, headers=API)  # noqa: E731
            else:
                send = lambda target=target: http.post(target, data=form(reason="nee"))  # noqa: E731
            await run("POST", template, event, actor, send)
        await run(
            "POST",
            f"{cr}/logout",
            "controlroom.logout",
            "operator:ada",
            lambda: http.post(f"{cr}/logout", data=form()),
        )
        page = await http.get(f"{cr}/login")
        await run(
            "POST",
            f"{cr}/login",
            "controlroom.login",
            "operator:ada",
            lambda: http.post(
                f"{cr}/login",
                data={"username": "ada", "password": PASSWORD, "csrf_token": csrf_of(page.text)},
            ),
        )
    assert wrong == []
    assert walked == changing_routes(whole) - NOT_AUDITED, "walk (and audit) the new route"
