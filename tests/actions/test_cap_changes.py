"""CAP Update and Cancel in: a message that references one of our actions becomes a draft update or a
cancel waiting for an operator (nothing sent); our own CAP out posted back in gives the same text; an
unknown reference is a 422, an action that no longer runs a 409, invalid CAP a 422 (never a 500)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from lxml import etree
from sqlmodel import col, select

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.api.cap import cap_router, cap_sender
from bot.cap.document import (
    NS,
    CapAlert,
    CapChangeMessage,
    CapReference,
    alert_xml,
    cap_time,
    read_cap,
    validation_errors,
)
from bot.services.actions import ActionService
from bot.services.cap_changes import CapChanges, new_text
from bot.texts import Catalogue
from storage.actions import ActionDraft, get_action
from storage.cap_changes import CapAlertSeen, CapMessageSeen, actions_with_waiting_changes
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import (
    Action,
    ActionOutcome,
    ActionStatus,
    ActionUpdate,
    AuditEvent,
    CapChange,
    CapChangeStatus,
    Delivery,
)
from tests.actions.conftest import ENSCHEDE, dispatch_settings
from tests.conftest import FixedClock

TOKEN = "test-token-cap-changes"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP = {**AUTH, "Content-Type": "application/cap+xml"}
PUBLIC = "https://burgernet.example"
SENDER = "burgernet@burgernet.example"
DISPATCH = "meldkamer-oost@politie.example"
DESCRIPTION = "Tim is sinds 14:00 vermist rond het Volkspark."
INSTRUCTION = "Ziet u hem? Bel 112."


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> Iterator[TestClient]:
    """The actions and CAP routers on a bare app, with a fixed clock."""
    settings = dispatch_settings(api_token=TOKEN, public_base_url=PUBLIC)
    assert cap_sender(settings) == SENDER
    app = FastAPI()
    app.include_router(
        actions_router(sessions=sessions, settings=settings, clock=clock, book=book, texts=texts)
    )
    app.include_router(
        cap_router(
            sessions=sessions,
            settings=settings,
            clock=clock,
            book=book,
            texts=texts,
            catalogue=Catalogue.load(),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _launched(client: TestClient, clock: FixedClock) -> dict[str, Any]:
    body = {
        "type": "missing_person",
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": DESCRIPTION,
        "instruction": INSTRUCTION,
        "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    created = client.post("/api/v1/actions", headers=AUTH, json=body)
    assert created.status_code == 201, created.text
    action = created.json()
    assert client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH).status_code == 200
    return client.get(f"/api/v1/actions/{action['id']}", headers=AUTH).json()  # type: ignore[no-any-return]


def _cap(client: TestClient, action_id: int) -> bytes:
    response = client.get(f"/api/v1/actions/{action_id}/cap", headers=AUTH)
    assert response.status_code == 200
    assert validation_errors(response.content) == []
    return response.content


def _find(document: bytes, path: str) -> list[str]:
    return [e.text or "" for e in etree.fromstring(document).iterfind(path, {"c": NS})]


def _reference(action: dict[str, Any]) -> str:
    """Our alert of a launched action as a CAP reference: sender, identifier, sent."""
    sent = cap_time(_at(action["launched_at"]))
    return f"{SENDER},burgernet-{action['code']},{sent}"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _message(
    msg_type: str,
    references: str,
    *,
    identifier: str = "MK-OOST-2026-0042-1",
    sent: str = "2026-11-20T15:40:00+01:00",
    headline: str = "Vermist: jongen (8)",
    description: str = "",
    instruction: str = "",
    info: bool = True,
    note: str = "",
    area: str = "",
) -> bytes:
    """A dispatch system's CAP message: an Update or Cancel (with `references`), or its own Alert."""
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{NS}">
  <identifier>{identifier}</identifier>
  <sender>{DISPATCH}</sender>
  <sent>{sent}</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{f"<note>{note}</note>" if note else ""}
  {f"<references>{references}</references>" if references else ""}"""
    if info:
        body += f"""
  <info>
    <language>nl-NL</language>
    <category>Rescue</category>
    <event>Vermissing</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <headline>{headline}</headline>
    {f"<description>{description}</description>" if description else ""}
    {f"<instruction>{instruction}</instruction>" if instruction else ""}
    {area}
  </info>"""
    return (body + "\n</alert>").encode()


def _nothing_sent(sessions: SessionFactory, action_id: int) -> None:
    with sessions() as session:
        kinds = {d.kind.value for d in session.exec(select(Delivery).where(Delivery.action_id == action_id))}
        assert session.exec(select(ActionUpdate)).all() == []
        action = get_action(session, action_id=action_id)
    assert kinds == {"alert"} or kinds == set()
    assert action.status is ActionStatus.ACTIVE


def test_an_update_of_our_action_becomes_a_draft_update_and_sends_nothing(
    client: TestClient, clock: FixedClock, sessions: SessionFactory
) -> None:
    action = _launched(client, clock)
    document = _message(
        "Update",
        _reference(action),
        description=f"{DESCRIPTION}\n\nTim is gezien bij het station, met een rode pet.",
        instruction="Volg hem op afstand en bel 112.",
    )
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 201, response.text
    change = response.json()
    assert change["kind"] == "update" and change["status"] == "waiting"
    assert (change["action_id"], change["action_code"]) == (action["id"], action["code"])
    # Only what the Update adds to the story the action told.
    assert change["text"] == "Tim is gezien bij het station, met een rode pet."
    assert change["instruction"] == "Volg hem op afstand en bel 112."
    assert (change["cap_sender"], change["cap_identifier"]) == (DISPATCH, "MK-OOST-2026-0042-1")
    assert change["confirm_at"] == f"/controlroom/actions/{action['id']}"
    _nothing_sent(sessions, action["id"])
    with sessions() as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.event == "cap_change_received")).all()
    assert event.actor == f"cap:{DISPATCH}" and event.subject == f"action:{action['id']}"


def test_a_cancel_of_our_action_waits_for_an_operator(
    client: TestClient, clock: FixedClock, sessions: SessionFactory
) -> None:
    action = _launched(client, clock)
    # A Cancel may come without an info block; its note says why.
    document = _message("Cancel", _reference(action), info=False, note="Melding ingetrokken: vergissing.")
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 201, response.text
    change = response.json()
    assert (change["kind"], change["status"], change["text"]) == (
        "cancel",
        "waiting",
        "Melding ingetrokken: vergissing.",
    )
    _nothing_sent(sessions, action["id"])


def test_our_cap_of_an_updated_action_posted_back_gives_a_waiting_update_with_the_same_text(
    client: TestClient, clock: FixedClock, sessions: SessionFactory
) -> None:
    action = _launched(client, clock)
    clock.advance(minutes=5)
    first = {"text": "Tim is gezien bij het station.", "instruction": ""}
    assert client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json=first).status_code == 201
    clock.advance(minutes=5)
    second = {"text": "Hij draagt nu een rode pet.", "instruction": "Volg hem op afstand en bel 112."}
    assert (
        client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json=second).status_code == 201
    )
    document = _cap(client, action["id"])
    assert _find(document, "c:msgType") == ["Update"]
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 201, response.text
    change = response.json()
    assert change["kind"] == "update"
    assert (change["text"], change["instruction"]) == (second["text"], second["instruction"])
    assert change["cap_identifier"] == _find(document, "c:identifier")[0]


def test_our_cap_of_an_update_without_instruction_gives_none(client: TestClient, clock: FixedClock) -> None:
    action = _launched(client, clock)
    clock.advance(minutes=5)
    update = {"text": "Tim is gezien bij het station."}
    assert (
        client.post(f"/api/v1/actions/{action['id']}/updates", headers=AUTH, json=update).status_code == 201
    )
    document = _cap(client, action["id"])
    assert _find(document, "c:info/c:instruction") == [INSTRUCTION]  # the action's own, repeated
    change = client.post("/api/v1/cap", headers=CAP, content=document).json()
    assert (change["text"], change["instruction"]) == (update["text"], "")


def test_our_cap_of_a_cancelled_action_posted_back_gives_a_waiting_cancel_with_the_same_text(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, texts: AlertTexts
) -> None:
    action = _launched(client, clock)
    with sessions() as session:
        running = get_action(session, action_id=action["id"])
    clock.advance(minutes=5)
    # Our CAP out as it reads once the action is cancelled (written by the same function as GET …/cap);
    # the action itself still runs here, so the Cancel can wait for an operator.
    cancelled = running.model_copy(
        update={
            "status": ActionStatus.CANCELLED,
            "outcome": ActionOutcome.CANCELLED,
            "closing_text": "",
            "closed_at": clock(),
        }
    )
    document = alert_xml(
        cancelled,
        sender=SENDER,
        web=f"{PUBLIC}/a/{action['code']}",
        event="Vermissing",
        area_desc="Enschede",
    )
    assert validation_errors(document) == []
    assert _find(document, "c:msgType") == ["Cancel"]
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 201, response.text
    change = response.json()
    assert change["kind"] == "cancel"
    assert change["text"] == _find(document, "c:info/c:description")[0] == DESCRIPTION
    _nothing_sent(sessions, action["id"])


def test_the_same_message_twice_is_one_change(client: TestClient, clock: FixedClock) -> None:
    action = _launched(client, clock)
    document = _message("Update", _reference(action), description="Rode pet.")
    assert client.post("/api/v1/cap", headers=CAP, content=document).status_code == 201
    again = client.post("/api/v1/cap", headers=CAP, content=document)
    assert again.status_code == 409
    assert "received already" in again.json()["detail"]


@pytest.mark.parametrize(
    ("references", "words"),
    [
        ("other@example,X-1,2026-11-20T15:00:00+01:00", "must reference one of our alerts"),
        (f"{SENDER},burgernet-BN-WWWW,2026-11-20T15:00:00+01:00", "is no message of ours"),
        (f"{SENDER},something-else,2026-11-20T15:00:00+01:00", "is no message of ours"),
        ("{ours_wrong_time}", "is no message of ours"),
        (f"{SENDER},burgernet-{{code}}-update-7,{{sent}}", "is no message of ours"),
        ("garbage", "is not 'sender,identifier,sent'"),
        (f"{SENDER},burgernet-{{code}},yesterday", "is not a CAP dateTime"),
    ],
    ids=["foreign", "unknown-code", "not-ours", "wrong-sent", "no-such-update", "garbage", "bad-time"],
)
def test_a_reference_to_no_action_of_ours_is_a_422(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, references: str, words: str
) -> None:
    action = _launched(client, clock)
    sent = cap_time(_at(action["launched_at"]))
    wrong = cap_time(_at(action["launched_at"]) + timedelta(minutes=1))
    references = references.format(
        code=action["code"], sent=sent, ours_wrong_time=f"{SENDER},burgernet-{action['code']},{wrong}"
    )
    for msg_type in ("Update", "Cancel"):
        document = _message(msg_type, references, description="Rode pet.")
        response = client.post("/api/v1/cap", headers=CAP, content=document)
        assert response.status_code == 422, response.text
        assert words in response.json()["detail"][0]["msg"]
    with sessions() as session:
        assert session.exec(select(CapChange)).all() == []


@pytest.mark.parametrize("ending", ["close", "cancel"])
def test_an_action_that_no_longer_runs_is_a_409(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, ending: str
) -> None:
    action = _launched(client, clock)
    reference = _reference(action)
    body = (
        {"outcome": "found", "closing_text": "Tim is gevonden."} if ending == "close" else {"reason": "Fout."}
    )
    assert client.post(f"/api/v1/actions/{action['id']}/{ending}", headers=AUTH, json=body).status_code == 200
    for n, msg_type in enumerate(("Update", "Cancel")):
        document = _message(msg_type, reference, identifier=f"MK-{n}", description="Rode pet.")
        response = client.post("/api/v1/cap", headers=CAP, content=document)
        assert response.status_code == 409, response.text
        assert "only an active action" in response.json()["detail"]
    # A reference to our closing message names the action as well: still 409, not "unknown".
    ended = _cap(client, action["id"])
    triple = ",".join(_find(ended, f"c:{name}")[0] for name in ("sender", "identifier", "sent"))
    response = client.post("/api/v1/cap", headers=CAP, content=_message("Update", triple, description="x"))
    assert response.status_code == 409
    with sessions() as session:
        assert session.exec(select(CapChange)).all() == []


def test_our_own_draft_takes_no_cap_update_but_a_cancel_withdraws_it(
    client: TestClient, clock: FixedClock
) -> None:
    body = {
        "type": "other",
        "headline": "Inbraak",
        "description": "Inbraak aan de Hengelosestraat.",
        "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    draft = client.post("/api/v1/actions", headers=AUTH, json=body).json()
    reference = f"{SENDER},burgernet-{draft['code']},{cap_time(_at(draft['created_at']))}"
    response = client.post("/api/v1/cap", headers=CAP, content=_message("Update", reference, description="x"))
    assert response.status_code == 409
    assert "is draft" in response.json()["detail"]
    response = client.post("/api/v1/cap", headers=CAP, content=_message("Cancel", reference, info=False))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "sent"
    assert client.get(f"/api/v1/actions/{draft['id']}", headers=AUTH).json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"info": False}, "an Update needs an info block"),
        ({"description": "x" * 1300}, "longer than 1200"),
        ({"description": "Rode pet.", "instruction": "y" * 400}, "longer than 300"),
    ],
    ids=["no-info", "long-text", "long-instruction"],
)
def test_an_update_we_cannot_use_is_a_422(
    client: TestClient, clock: FixedClock, changes: dict[str, Any], words: str
) -> None:
    action = _launched(client, clock)
    response = client.post(
        "/api/v1/cap", headers=CAP, content=_message("Update", _reference(action), **changes)
    )
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"][0]["msg"]


def test_invalid_cap_update_is_a_422_with_the_schema_error(client: TestClient, clock: FixedClock) -> None:
    action = _launched(client, clock)
    document = _message("Update", _reference(action), description="x").replace(b"<scope>Public</scope>", b"")
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 422
    assert "scope" in response.json()["detail"][0]["msg"]
    ack = _message("Ack", _reference(action), description="x")
    response = client.post("/api/v1/cap", headers=CAP, content=ack)
    assert response.status_code == 422
    assert "Ack is not taken here" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("description", "told", "new"),
    [
        ("A\n\nB", ["A"], "B"),
        ("A\n\nB\n\nC", ["A", "B"], "C"),
        ("A\n\nB", ["A", "B"], "B"),
        ("Iets anders.", ["A", "B"], "Iets anders."),
        ("A  zegt\n\n  B \n\nC", ["A zegt", "B"], "C"),
        ("A\n\nB C", ["A", "B"], "B C"),
        ("A", ["A"], "A"),
    ],
    ids=[
        "one-new",
        "after-updates",
        "echo-gives-last",
        "other-story",
        "spacing",
        "changed-part",
        "only-told",
    ],
)
def test_new_text_is_what_the_update_adds(description: str, told: list[str], new: str) -> None:
    assert new_text(description, told) == new


def test_waiting_changes_are_stored_until_decided(
    client: TestClient, clock: FixedClock, sessions: SessionFactory
) -> None:
    action = _launched(client, clock)
    client.post("/api/v1/cap", headers=CAP, content=_message("Update", _reference(action), description="x"))
    with sessions() as session:
        [change] = session.exec(select(CapChange)).all()
    assert change.status is CapChangeStatus.WAITING and change.decided_by is None
    assert change.received_at == clock()


@pytest.mark.parametrize("end", ["close", "cancel"])
def test_a_change_still_waiting_when_the_action_ends_lapses(
    client: TestClient, clock: FixedClock, sessions: SessionFactory, end: str
) -> None:
    action = _launched(client, clock)
    update = _message("Update", _reference(action), description="Rode pet.")
    assert client.post("/api/v1/cap", headers=CAP, content=update).status_code == 201
    clock.advance(minutes=5)
    body = {"reason": "Dubbel."} if end == "cancel" else {"outcome": "found", "closing_text": "Gevonden."}
    assert client.post(f"/api/v1/actions/{action['id']}/{end}", headers=AUTH, json=body).status_code == 200
    with sessions() as session:
        [change] = session.exec(select(CapChange)).all()
        assert actions_with_waiting_changes(session) == []
    assert change.status is CapChangeStatus.LAPSED
    assert change.decided_by is None and change.decided_at == clock()


def test_the_same_message_twice_at_once_is_one_change(
    client: TestClient,
    clock: FixedClock,
    sessions: SessionFactory,
    book: PostcodeBook,
    texts: AlertTexts,
) -> None:
    action = _launched(client, clock)
    service = ActionService(
        sessions=sessions, clock=clock, book=book, texts=texts, settings=dispatch_settings()
    )
    changes = CapChanges(actions=service, sender=SENDER)
    message = read_cap(_message("Update", _reference(action), description="Rode pet."))
    assert isinstance(message, CapChangeMessage)
    assert _twice_at_once(lambda: changes.receive(message), CapMessageSeen) == ["seen", "stored"]
    with sessions() as session:
        assert len(session.exec(select(CapChange)).all()) == 1


def _twice_at_once(post: Callable[[], object], seen: type[Exception]) -> list[str]:
    """Run `post` in two threads let go at the same moment; what each came to, sorted."""
    start = threading.Barrier(2)
    results: list[str] = []

    def run() -> None:
        start.wait()
        try:
            post()
            results.append("stored")
        except seen:
            results.append("seen")

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(results)


ALERT_ID = "MK-OOST-2026-0042"
ALERT_SENT = "2026-11-20T15:25:00+01:00"
ALERT_REFERENCE = f"{DISPATCH},{ALERT_ID},{ALERT_SENT}"


def _dispatch_alert(identifier: str = ALERT_ID) -> bytes:
    """A dispatch system's own CAP Alert, as it posts it to become a draft here."""
    return _message(
        "Alert",
        "",
        identifier=identifier,
        sent=ALERT_SENT,
        headline="Vermist: jongen (8), blauwe jas",
        description=DESCRIPTION,
        instruction=INSTRUCTION,
        area=f"<area><areaDesc>Enschede</areaDesc><circle>{ENSCHEDE[0]},{ENSCHEDE[1]} 3</circle></area>",
    )


def draft_of_dispatch_alert(expires_at: datetime) -> tuple[ActionDraft, CapReference]:
    """The draft `POST /api/v1/cap` makes of the dispatch system's Alert, and the Alert it came from."""
    alert = read_cap(_dispatch_alert())
    assert isinstance(alert, CapAlert)
    draft = ActionDraft(
        type=alert.type,
        headline=alert.headline,
        description=alert.description,
        instruction=alert.instruction,
        area=alert.area,
        expires_at=expires_at,
    )
    return draft, CapReference(sender=alert.sender, identifier=alert.identifier, sent=alert.sent)


def _launched_from_cap(client: TestClient) -> dict[str, Any]:
    created = client.post("/api/v1/cap", headers=CAP, content=_dispatch_alert())
    assert created.status_code == 201, created.text
    action = created.json()
    assert action["status"] == "draft"
    assert client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH).status_code == 200
    return action  # type: ignore[no-any-return]


def test_an_update_and_a_cancel_of_a_dispatch_systems_own_alert_wait_for_an_operator(
    client: TestClient, sessions: SessionFactory
) -> None:
    action = _launched_from_cap(client)
    update = _message(
        "Update",
        ALERT_REFERENCE,
        identifier=f"{ALERT_ID}-1",
        description=f"{DESCRIPTION}\n\nTim is gezien bij het station, met een rode pet.",
    )
    response = client.post("/api/v1/cap", headers=CAP, content=update)
    assert response.status_code == 201, response.text
    change = response.json()
    assert (change["kind"], change["status"], change["action_id"]) == ("update", "waiting", action["id"])
    assert change["text"] == "Tim is gezien bij het station, met een rode pet."
    _nothing_sent(sessions, action["id"])
    # CAP lists every earlier message of the exchange: the Alert and the first Update.
    cancel = _message(
        "Cancel",
        f"{ALERT_REFERENCE} {DISPATCH},{ALERT_ID}-1,2026-11-20T15:40:00+01:00",
        identifier=f"{ALERT_ID}-2",
        info=False,
        note="Tim is thuis.",
    )
    response = client.post("/api/v1/cap", headers=CAP, content=cancel)
    assert response.status_code == 201, response.text
    assert (response.json()["kind"], response.json()["action_id"]) == ("cancel", action["id"])
    with sessions() as session:
        assert len(session.exec(select(CapChange)).all()) == 2


def test_the_same_alert_twice_is_one_draft(client: TestClient, sessions: SessionFactory) -> None:
    first = client.post("/api/v1/cap", headers=CAP, content=_dispatch_alert())
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/cap", headers=CAP, content=_dispatch_alert())
    assert again.status_code == 409, again.text
    assert "received already" in again.json()["detail"]
    assert f"/api/v1/actions/{first.json()['id']}" in again.json()["detail"]
    # Another Alert of the same dispatch system is another draft.
    other = client.post("/api/v1/cap", headers=CAP, content=_dispatch_alert(f"{ALERT_ID}-B"))
    assert other.status_code == 201, other.text
    with sessions() as session:
        assert len(session.exec(select(Action)).all()) == 2


@pytest.mark.parametrize(
    "references",
    [
        f"{DISPATCH},{ALERT_ID},2026-11-20T15:26:00+01:00",
        f"{DISPATCH},MK-OOST-2026-0099,{ALERT_SENT}",
        f"other@politie.example,{ALERT_ID},{ALERT_SENT}",
    ],
    ids=["other-sent", "other-identifier", "other-sender"],
)
def test_a_reference_to_no_alert_received_here_is_a_422(
    client: TestClient, sessions: SessionFactory, references: str
) -> None:
    _launched_from_cap(client)
    response = client.post(
        "/api/v1/cap", headers=CAP, content=_message("Update", references, description="Rode pet.")
    )
    assert response.status_code == 422, response.text
    assert "or a CAP Alert received here" in response.json()["detail"][0]["msg"]
    with sessions() as session:
        assert session.exec(select(CapChange)).all() == []


def test_an_update_of_an_alert_still_a_draft_is_a_409(client: TestClient) -> None:
    assert client.post("/api/v1/cap", headers=CAP, content=_dispatch_alert()).status_code == 201
    response = client.post(
        "/api/v1/cap", headers=CAP, content=_message("Update", ALERT_REFERENCE, description="Rode pet.")
    )
    assert response.status_code == 409, response.text
    assert "only an active action" in response.json()["detail"]


def test_the_same_alert_twice_at_once_is_one_draft(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    service = ActionService(
        sessions=sessions, clock=clock, book=book, texts=texts, settings=dispatch_settings()
    )
    draft, source = draft_of_dispatch_alert(clock() + timedelta(hours=2))

    def post() -> None:
        service.create(draft, actor="cap:test", created_by="cap", cap_alert=source)

    assert _twice_at_once(post, CapAlertSeen) == ["seen", "stored"]
    with sessions() as session:
        assert len(session.exec(select(Action)).all()) == 1


def test_a_cancel_of_an_alert_still_a_draft_cancels_it_at_once_and_sends_nothing(
    client: TestClient, sessions: SessionFactory
) -> None:
    draft = client.post("/api/v1/cap", headers=CAP, content=_dispatch_alert()).json()
    cancel = _message("Cancel", ALERT_REFERENCE, identifier=f"{ALERT_ID}-1", info=False, note="Vergissing.")
    response = client.post("/api/v1/cap", headers=CAP, content=cancel)
    assert response.status_code == 201, response.text
    change = response.json()
    assert (change["kind"], change["status"], change["action_id"]) == ("cancel", "sent", draft["id"])
    shown = client.get(f"/api/v1/actions/{draft['id']}", headers=AUTH).json()
    assert shown["status"] == "cancelled"
    # What its source withdrew can no longer be launched.
    assert client.post(f"/api/v1/actions/{draft['id']}/launch", headers=AUTH).status_code == 409
    with sessions() as session:
        assert session.exec(select(Delivery)).all() == []
        [stored] = session.exec(select(CapChange)).all()
        events = [e.event for e in session.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()]
    assert (stored.status, stored.decided_by) == (CapChangeStatus.SENT, f"cap:{DISPATCH}")
    assert events[-2:] == ["action_cancelled", "cap_change_received"]
    # The same Cancel again is the same change, not a second cancel.
    again = client.post("/api/v1/cap", headers=CAP, content=cancel)
    assert again.status_code == 409, again.text
