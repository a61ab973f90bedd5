"""The live page's update, widen and cancel forms over HTTP: what the operator typed stays and a Dutch
reason shows when a form is refused; nothing is stored or sent then."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from storage.db import SessionFactory
from storage.models import Action, ActionStatus, ActionUpdate, AuditEvent
from tests.controlroom.conftest import app, client, cr, csrf_of, login, runtime, tips  # noqa: F401  (fixtures)
from tests.controlroom.test_actions_pages import _launched


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
