"""The actions service without HTTP: refusals as domain errors, create → preview → launch → close, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.services.actions import ActionService, InvalidAction
from storage.actions import ActionDraft, ActionNotFound, ActionStateError
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import ActionOutcome, ActionType, AuditEvent
from tests.actions.conftest import ENSCHEDE, dispatch_settings, seed_person
from tests.conftest import FixedClock


def _service(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts, woken: list[int]
) -> ActionService:
    return ActionService(
        sessions=sessions,
        clock=clock,
        book=book,
        texts=texts,
        settings=dispatch_settings(),
        wake=lambda: woken.append(1),
    )


def _draft(clock: FixedClock, **area: object) -> ActionDraft:
    return ActionDraft(
        type=ActionType.MISSING_PERSON,
        headline="Vermist: jongen (8), blauwe jas",
        description="Tim is sinds 14:00 vermist rond het Volkspark.",
        instruction="Ziet u hem? Bel 112.",
        area=area or {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 5000}},
        expires_at=clock() + timedelta(hours=2),
    )


def test_refusals_name_each_problem_and_store_nothing(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    service = _service(sessions, clock, book, texts, [])
    with pytest.raises(InvalidAction) as unknown:
        service.create(_draft(clock, municipalities=["Enschede", "", "Atlantis"]), actor="t", created_by="t")
    assert [(p.loc, p.kind, p.name) for p in unknown.value.problems] == [
        (("area", "municipalities", 2), "municipality", "Atlantis")
    ]
    expired = ActionDraft(**{**_draft(clock).__dict__, "expires_at": clock() - timedelta(minutes=1)})
    with pytest.raises(InvalidAction) as late:
        service.create(expired, actor="t", created_by="t")
    assert [p.kind for p in late.value.problems] == ["expires_at"]
    with sessions() as session:
        assert session.exec(select(AuditEvent)).all() == []


def test_create_preview_launch_close(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    woken: list[int] = []
    service = _service(sessions, clock, book, texts, woken)
    for _ in range(2):
        seed_person(sessions, vault, clock())
    action = service.create(_draft(clock, municipalities=["Enschede"]), actor="op", created_by="op")
    assert action.id is not None and action.area == {"municipalities": ["0153"]}
    assert service.preview(action.id).estimate.recipients == 2 and woken == []
    assert service.launch(action.id, actor="op", runs_from_launch=True) == 2 and woken == [1]
    with pytest.raises(ActionStateError):
        service.launch(action.id, actor="op", runs_from_launch=True)
    audience = service.closing_audience(action.id).total  # only those the alert reached get a closing
    assert service.close(action.id, outcome=ActionOutcome.FOUND, closing_text="Gevonden.", actor="op") == (
        audience
    )
    assert woken == [1, 1]
    with pytest.raises(ActionNotFound):
        service.close(999, outcome=ActionOutcome.FOUND, closing_text="x", actor="op")
    with sessions() as session:
        events = [(e.actor, e.event) for e in session.exec(select(AuditEvent)).all()]
    assert events == [("op", "action_created"), ("op", "action_launched"), ("op", "action_closed")]
