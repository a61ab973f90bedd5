"""A CAP Update or Cancel waiting on the live page: shown above everything with "Versturen" / "Annuleren
bevestigen" and "Weggooien"; confirming sends it by the same use case as the forms (audited with who
confirmed, once even when clicked twice), throwing away sends nothing. The close form tells a withdrawn
action from one sent in error."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from bot.api.cap import cap_sender
from bot.cap.document import CapChangeMessage, CapReference
from bot.controlroom.deps import ControlRoom
from bot.controlroom.live import action_events
from bot.services.actions import ActionService
from bot.services.cap_changes import CapChanges
from storage.actions import get_action
from storage.cap_changes import actions_with_waiting_changes
from storage.db import SessionFactory
from storage.models import (
    ActionOutcome,
    ActionStatus,
    ActionUpdate,
    AuditEvent,
    CapChange,
    CapChangeStatus,
    Delivery,
    DeliveryKind,
)
from tests.actions.conftest import draft_over_enschede, launch_over_enschede
from tests.conftest import FixedClock
from tests.controlroom.conftest import app, client, cr, csrf_of, login, runtime, tips  # noqa: F401  (fixtures)
from tests.controlroom.test_actions_pages import _launched

DISPATCH = "meldkamer-oost@politie.example"


def _changes(cr: ControlRoom) -> CapChanges:  # noqa: F811
    service = ActionService(
        sessions=cr.sessions, clock=cr.clock, book=cr.book, texts=cr.texts, settings=cr.settings
    )
    return CapChanges(actions=service, sender=cap_sender(cr.settings))


def _receive(
    cr: ControlRoom,  # noqa: F811
    action_id: int,
    msg_type: str,
    *,
    description: str = "",
    instruction: str = "",
    note: str = "",
    identifier: str = "MK-OOST-1",
) -> int:
    """A dispatch system's CAP Update or Cancel of the action, as `POST /api/v1/cap` stores it."""
    changes = _changes(cr)
    with cr.sessions() as session:
        action = get_action(session, action_id=action_id)
    assert action.launched_at is not None
    reference = CapReference(changes.sender, f"burgernet-{action.code}", action.launched_at)
    change = changes.receive(
        CapChangeMessage(
            identifier=identifier,
            sender=DISPATCH,
            sent=cr.clock(),
            msg_type=msg_type,
            references=[reference],
            description=f"{action.description}\n\n{description}" if description else action.description,
            instruction=instruction,
            note=note,
        )
    )
    assert change.id is not None
    return change.id


def _change(sessions: SessionFactory, change_id: int) -> CapChange:
    with sessions() as session:
        found = session.get(CapChange, change_id)
    assert found is not None
    return found


def _events(sessions: SessionFactory, event: str) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.event == event)).all())


async def test_a_waiting_cap_update_is_shown_first_and_sent_once_on_confirmation(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    change_id = _receive(
        cr, action_id, "Update", description="Hij is gezien bij het station.", instruction="Bel 112."
    )
    page = await client.get(f"/controlroom/actions/{action_id}")
    assert page.status_code == 200
    # Above the tips, the map and every form of the page.
    position = page.text.index(f'id="cap-change-{change_id}"')
    assert position < page.text.index('id="tips-h"') < page.text.index('id="update-form"')
    card = page.text[position : page.text.index("</section>", position)]
    assert "Aanvulling via CAP wacht op bevestiging" in card and DISPATCH in card and "MK-OOST-1" in card
    assert ">Hij is gezien bij het station.</textarea>" in card and 'value="Bel 112."' in card
    assert ">Versturen</button>" in card and ">Weggooien</button>" in card
    with sessions() as session:
        assert session.exec(select(ActionUpdate)).all() == []

    # The operator sharpens the text before sending it.
    confirm = f"/controlroom/actions/{action_id}/cap-changes/{change_id}/confirm"
    form = {
        "csrf_token": csrf_of(page.text),
        "text": "Hij is gezien bij station Enschede.",
        "instruction": "Bel 112.",
    }
    sent = await client.post(confirm, data=form)
    assert sent.status_code == 303
    shown = await client.get(sent.headers["location"])
    assert "Aanvulling 1 via CAP verstuurd naar 0 ontvangers." in shown.text
    assert 'id="cap-changes"' not in shown.text
    assert "Hij is gezien bij station Enschede." in shown.text  # in the list of updates now
    with sessions() as session:
        [update] = session.exec(select(ActionUpdate)).all()
    assert (update.text, update.instruction, update.created_by) == (
        "Hij is gezien bij station Enschede.",
        "Bel 112.",
        "operator:olga",
    )
    change = _change(sessions, change_id)
    assert (change.status, change.decided_by, change.update_no) == (CapChangeStatus.SENT, "operator:olga", 1)
    [confirmed] = _events(sessions, "cap_change_confirmed")
    assert confirmed.actor == "operator:olga" and confirmed.detail["change"] == change_id
    [updated] = _events(sessions, "action_updated")
    assert updated.actor == "operator:olga"

    # A second click (or a colleague) sends nothing more.
    again = await client.post(confirm, data=form)
    assert again.status_code == 303
    assert (
        "Dit CAP-bericht is al verstuurd of weggegooid." in (await client.get(again.headers["location"])).text
    )
    with sessions() as session:
        assert len(session.exec(select(ActionUpdate)).all()) == 1


async def test_a_waiting_cap_cancel_is_confirmed_as_a_cancel(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    change_id = _receive(cr, action_id, "Cancel", note="Verkeerde persoon.")
    page = await client.get(f"/controlroom/actions/{action_id}")
    card = page.text[page.text.index(f'id="cap-change-{change_id}"') :]
    assert "Annulering via CAP wacht op bevestiging" in card and "Verkeerde persoon." in card
    assert ">Annuleren bevestigen</button>" in card and ">Weggooien</button>" in card
    with sessions() as session:
        assert get_action(session, action_id=action_id).status is ActionStatus.ACTIVE
    sent = await client.post(
        f"/controlroom/actions/{action_id}/cap-changes/{change_id}/confirm",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert sent.status_code == 303
    shown = await client.get(sent.headers["location"])
    assert "Annulering via CAP bevestigd: 0 correcties verstuurd." in shown.text
    with sessions() as session:
        action = get_action(session, action_id=action_id)
    assert (action.status, action.outcome) == (ActionStatus.CANCELLED, ActionOutcome.CANCELLED)
    [cancelled] = _events(sessions, "action_cancelled")
    assert cancelled.actor == "operator:olga"
    assert "MK-OOST-1" in cancelled.detail["reason"] and "Verkeerde persoon." in cancelled.detail["reason"]
    assert _change(sessions, change_id).decided_by == "operator:olga"


async def test_throwing_a_cap_change_away_sends_nothing(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    change_id = _receive(cr, action_id, "Cancel", note="Vergissing.")
    page = await client.get(f"/controlroom/actions/{action_id}")
    thrown = await client.post(
        f"/controlroom/actions/{action_id}/cap-changes/{change_id}/discard",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert thrown.status_code == 303
    shown = await client.get(thrown.headers["location"])
    assert "CAP-bericht weggegooid; er is niets verstuurd." in shown.text
    assert 'id="cap-changes"' not in shown.text
    with sessions() as session:
        action = get_action(session, action_id=action_id)
        kinds = {d.kind for d in session.exec(select(Delivery).where(Delivery.action_id == action_id))}
    assert action.status is ActionStatus.ACTIVE
    assert DeliveryKind.CANCEL not in kinds
    change = _change(sessions, change_id)
    assert (change.status, change.decided_by) == (CapChangeStatus.DISCARDED, "operator:olga")
    [event] = _events(sessions, "cap_change_discarded")
    assert event.actor == "operator:olga"
    assert _events(sessions, "action_cancelled") == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("   ", "Vul in wat er nieuw is."),
        ("Een man met een lange grijze jas en een hoed. " * 12, "twee sms-delen"),
    ],
    ids=["blank", "too-long-for-sms"],
)
async def test_a_refused_edit_keeps_the_change_waiting(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
    text: str,
    error: str,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    change_id = _receive(cr, action_id, "Update", description="Rode pet.")
    page = await client.get(f"/controlroom/actions/{action_id}")
    refused = await client.post(
        f"/controlroom/actions/{action_id}/cap-changes/{change_id}/confirm",
        data={"csrf_token": csrf_of(page.text), "text": text},
    )
    assert refused.status_code == 422
    assert error in refused.text and 'id="cap-change-error"' in refused.text
    assert _change(sessions, change_id).status is CapChangeStatus.WAITING
    with sessions() as session:
        assert session.exec(select(ActionUpdate)).all() == []
    assert _events(sessions, "cap_change_confirmed") == []


async def test_confirming_needs_the_form_token_and_a_running_action(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    change_id = _receive(cr, action_id, "Update", description="Rode pet.")
    confirm = f"/controlroom/actions/{action_id}/cap-changes/{change_id}/confirm"
    assert (await client.post(confirm, data={"text": "zonder token"})).status_code == 403
    page = await client.get(f"/controlroom/actions/{action_id}")
    other = await client.post(
        f"/controlroom/actions/{action_id}/cap-changes/{change_id + 99}/confirm",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert other.status_code == 404
    # Closed by a colleague meanwhile: the update is refused and nothing changes.
    _changes(cr).actions.close(action_id, outcome=ActionOutcome.FOUND, closing_text="", actor="operator:cor")
    refused = await client.post(confirm, data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 303
    shown = await client.get(refused.headers["location"])
    assert "De actie is afgelopen voordat dit CAP-bericht bevestigd was" in shown.text
    assert 'id="cap-changes"' not in shown.text
    assert _change(sessions, change_id).status is CapChangeStatus.LAPSED
    with sessions() as session:
        assert session.exec(select(ActionUpdate)).all() == []


async def test_the_close_form_tells_withdrawn_from_sent_in_error(
    client: httpx.AsyncClient,  # noqa: F811
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    form = page.text[
        page.text.index('id="close-form"') : page.text.index("</form>", page.text.index('id="close-form"'))
    ]
    labels = re.findall(r'value="(\w+)"[^>]*> ([^<]+)</label>', form)
    assert dict(labels)["cancelled"] == "Ingetrokken (geen vergissing)"
    hint = re.search(r'<p class="hint" id="outcome-hint">(.*?)</p>', form, re.S)
    assert (
        hint is not None and "Annuleren (vergissing)" in hint.group(1) and 'href="#cancel-h"' in hint.group(1)
    )
    # The stored value stays `cancelled`: the confirmation page names it the same way.
    check = await client.post(
        f"/controlroom/actions/{action_id}/close",
        data={"csrf_token": csrf_of(page.text), "outcome": "cancelled", "closing_text": ""},
    )
    assert check.status_code == 200
    assert re.search(r'id="close-outcome">Ingetrokken \(geen vergissing\)<', check.text)


async def _never() -> bool:
    return False


async def _stream(cr: ControlRoom, action_id: int) -> list[str]:  # noqa: F811
    events = action_events(cr, action_id=action_id, after=0, disconnected=_never, max_polls=1)
    return [e for e in [e async for e in events] if "event: cap_changes" in e]


async def test_the_live_stream_tells_the_page_which_cap_changes_wait(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    assert await _stream(cr, action_id) == []  # nothing waits: no event at all
    first = _receive(cr, action_id, "Update", description="Rode pet.")
    second = _receive(cr, action_id, "Cancel", note="Vergissing.", identifier="MK-OOST-2")
    [event] = await _stream(cr, action_id)
    assert json.loads(event.split("data: ", 1)[1]) == {"waiting": [first, second]}
    page = await client.get(f"/controlroom/actions/{action_id}")
    assert f'data-cap-waiting="{first},{second}"' in page.text
    assert '<p class="banner notice" id="cap-arrived" role="alert" hidden>' in page.text


async def test_every_page_tells_operators_that_a_cap_change_waits(
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    before = await client.get("/controlroom/actions")
    assert 'id="cap-waiting"' not in before.text
    change_id = _receive(cr, action_id, "Update", description="Rode pet.")
    with sessions() as session:
        code = get_action(session, action_id=action_id).code
    for path in ("/controlroom/actions", "/controlroom/figures"):
        page = await client.get(path)
        banner = page.text[
            page.text.index('id="cap-waiting"') : page.text.index(
                "</div>", page.text.index('id="cap-waiting"')
            )
        ]
        assert "CAP-bericht wacht op bevestiging:" in banner
        assert f'href="/controlroom/actions/{action_id}#cap-changes"' in banner and code in banner
    page = await client.get("/controlroom/actions")
    await client.post(
        f"/controlroom/actions/{action_id}/cap-changes/{change_id}/discard",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert 'id="cap-waiting"' not in (await client.get("/controlroom/actions")).text


async def test_a_coordinator_sees_no_cap_banner(
    app: FastAPI,  # noqa: F811
    client: httpx.AsyncClient,  # noqa: F811
    cr: ControlRoom,  # noqa: F811
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    _receive(cr, action_id, "Cancel", note="Vergissing.")
    coordinator = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")
    async with coordinator:
        await login(coordinator, "cor")
        page = await coordinator.get("/controlroom/figures")
    assert page.status_code == 200 and 'id="cap-waiting"' not in page.text


def test_only_running_actions_count_as_waiting(
    cr: ControlRoom,  # noqa: F811
    sessions: SessionFactory,
    clock: FixedClock,
) -> None:
    running = draft_over_enschede(sessions, clock)
    launch_over_enschede(sessions, clock, running)
    ended = draft_over_enschede(sessions, clock)
    launch_over_enschede(sessions, clock, ended)
    _receive(cr, ended, "Update", description="Rode pet.", identifier="MK-A")
    clock.advance(minutes=1)
    _receive(cr, running, "Update", description="Rode pet.", identifier="MK-B")
    _receive(cr, running, "Cancel", note="Vergissing.", identifier="MK-C")
    with sessions() as session:
        assert [a.id for a in actions_with_waiting_changes(session)] == [ended, running]
    _changes(cr).actions.close(ended, outcome=ActionOutcome.FOUND, closing_text="", actor="test")
    with sessions() as session:
        assert [a.id for a in actions_with_waiting_changes(session)] == [running]
