"""Who may launch: regions, four eyes (request, approve by another, reject, audited) and exercises."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.alerts import AlertTexts
from bot.controlroom.pages_figures import actions_per_month
from bot.services.actions import SYSTEM, ActionService, Launcher, LaunchRefused
from storage.actions import ActionDraft, ActionStateError
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import (
    Action,
    ActionStatus,
    ActionType,
    AuditEvent,
    Delivery,
    DeliveryKind,
    Operator,
    OperatorRole,
    Participant,
)
from storage.regions import (
    EVERYWHERE,
    Coverage,
    save_region,
    set_approval_rule,
    set_operator_regions,
    touched_municipalities,
)
from storage.reports import compute, month
from storage.targeting import Circle, Municipalities, parse_polygon
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, dispatch_settings, seed_person
from tests.conftest import FixedClock

ENSCHEDE_ONLY = 5000  # metres: every PC4 centre inside lies in Enschede (0153)
TWENTE_WIDE = 12000  # reaches Hengelo (0164), Haaksbergen, Oldenzaal, Losser too


def _service(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> ActionService:
    return ActionService(sessions=sessions, clock=clock, book=book, texts=texts, settings=dispatch_settings())


def _draft(clock: FixedClock, radius_m: int = ENSCHEDE_ONLY, *, exercise: bool = False) -> ActionDraft:
    return ActionDraft(
        type=ActionType.MISSING_PERSON,
        headline="Vermist: jongen (8), blauwe jas",
        description="Tim is sinds 14:00 vermist rond het Volkspark.",
        instruction="Ziet u hem? Bel 112.",
        area={"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": radius_m}},
        expires_at=clock() + timedelta(hours=2),
        exercise=exercise,
    )


def _operator(sessions: SessionFactory, clock: FixedClock, name: str, *regions: str) -> Launcher:
    with transaction(sessions) as session:
        operator = Operator(username=name, password_hash="x", role=OperatorRole.OPERATOR, created_at=clock())
        session.add(operator)
        session.flush()
        set_operator_regions(session, operator=operator, names=regions)
        assert operator.id is not None
        return Launcher(f"operator:{name}", operator.id)


@pytest.fixture
def regions(sessions: SessionFactory, clock: FixedClock) -> None:
    """Enschede alone, Twente (Enschede, Hengelo and their neighbours), and the whole country."""
    with transaction(sessions) as session:
        save_region(session, name="Enschede", municipalities=["0153"], now=clock())
        save_region(
            session, name="Twente", municipalities=["0153", "0164", "0168", "0173", "1774"], now=clock()
        )
        save_region(session, name=EVERYWHERE, municipalities=[], everywhere=True, now=clock())


def test_a_circle_touches_the_municipalities_of_its_postcodes(book: PostcodeBook) -> None:
    assert touched_municipalities(book, Circle(*ENSCHEDE, ENSCHEDE_ONLY)) == {"0153"}
    assert touched_municipalities(book, Circle(*ENSCHEDE, TWENTE_WIDE)) == {
        "0153",
        "0164",
        "0168",
        "0173",
        "1774",
    }
    # A circle too small to hold a PC4 centre still touches the municipality it lies in.
    assert touched_municipalities(book, Circle(ENSCHEDE[0] + 0.003, ENSCHEDE[1], 50)) == {"0153"}
    assert touched_municipalities(book, Municipalities(("0363", "0153"))) == {"0363", "0153"}
    assert Coverage(everywhere=False, codes=frozenset({"0153"})).missing({"0153", "0164"}) == ["0164"]
    assert Coverage(everywhere=True, codes=frozenset()).missing({"0153", "0164"}) == []


def _square(centre: tuple[float, float], half_deg: float) -> dict[str, object]:
    lat, lon = centre
    ring = [
        [lat - half_deg, lon - half_deg],
        [lat - half_deg, lon + half_deg],
        [lat + half_deg, lon + half_deg],
        [lat + half_deg, lon - half_deg],
        [lat - half_deg, lon - half_deg],
    ]
    return {"polygon": ring}


def test_a_polygon_touches_the_municipalities_of_the_postcodes_inside_it(book: PostcodeBook) -> None:
    small = touched_municipalities(book, parse_polygon(_square(ENSCHEDE, 0.02)))
    assert small == {"0153"}
    wide = touched_municipalities(book, parse_polygon(_square(ENSCHEDE, 0.15)))
    assert {"0153", "0164"} <= wide
    # A polygon too small to hold a PC4 centre still touches the municipality it lies in.
    tiny = touched_municipalities(book, parse_polygon(_square((ENSCHEDE[0] + 0.003, ENSCHEDE[1]), 0.0003)))
    assert tiny == {"0153"}


@pytest.mark.usefixtures("regions")
@pytest.mark.parametrize(
    ("regions_of", "radius_m", "missing"),
    [
        pytest.param(("Enschede",), ENSCHEDE_ONLY, [], id="own-region"),
        pytest.param(("Enschede",), TWENTE_WIDE, ["0164", "0168", "0173", "1774"], id="wider-than-region"),
        pytest.param(("Twente",), TWENTE_WIDE, [], id="wider-role"),
        pytest.param((EVERYWHERE,), TWENTE_WIDE, [], id="everywhere"),
        pytest.param((), ENSCHEDE_ONLY, ["0153"], id="no-region-no-launch"),
    ],
)
def test_an_operator_launches_only_where_their_regions_cover_the_area(
    sessions: SessionFactory,
    clock: FixedClock,
    book: PostcodeBook,
    texts: AlertTexts,
    vault: DataVault,
    regions_of: tuple[str, ...],
    radius_m: int,
    missing: list[str],
) -> None:
    seed_person(sessions, vault, clock())
    service = _service(sessions, clock, book, texts)
    olga = _operator(sessions, clock, "olga", *regions_of)
    action = service.create(_draft(clock, radius_m), actor=olga.actor, created_by=olga.actor)
    assert action.id is not None
    assert service.may_launch(action.id, by=olga) == missing
    if missing:
        with pytest.raises(LaunchRefused) as refused:
            service.request_launch(action.id, by=olga, runs_from_launch=True)
        assert (refused.value.reason, refused.value.missing) == ("region", missing)
        expected = ActionStatus.DRAFT
    else:
        result = service.request_launch(action.id, by=olga, runs_from_launch=True)
        assert (result.status, result.queued) == (ActionStatus.ACTIVE, 1)
        expected = ActionStatus.ACTIVE
    with sessions() as session:
        assert session.get(Action, action.id).status is expected  # type: ignore[union-attr]


def _audit(sessions: SessionFactory, action_id: int) -> list[tuple[str, str, dict[str, object]]]:
    with sessions() as session:
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.subject == f"action:{action_id}").order_by(col(AuditEvent.id))
        ).all()
        return [(row.event, row.actor, row.detail) for row in rows]


@pytest.mark.usefixtures("regions")
def test_four_eyes_a_second_operator_approves_and_the_launch_happens(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts, vault: DataVault
) -> None:
    seed_person(sessions, vault, clock())
    with transaction(sessions) as session:
        set_approval_rule(session, region_name="Twente", action_type="missing_person", required=True)
    service = _service(sessions, clock, book, texts)
    olga = _operator(sessions, clock, "olga", "Enschede")
    bram = _operator(sessions, clock, "bram", "Twente")
    elsewhere = _operator(sessions, clock, "henk")
    action = service.create(_draft(clock), actor=olga.actor, created_by=olga.actor)
    assert action.id is not None

    result = service.request_launch(action.id, by=olga, runs_from_launch=True)
    assert (result.status, result.queued) == (ActionStatus.AWAITING_APPROVAL, 0)
    with pytest.raises(LaunchRefused) as own:
        service.approve(action.id, by=olga)
    assert own.value.reason == "self_approval"
    with pytest.raises(LaunchRefused) as outside:
        service.approve(action.id, by=elsewhere)
    assert outside.value.reason == "region"
    with sessions() as session:
        assert session.exec(select(Delivery)).all() == []

    assert service.approve(action.id, by=bram) == 1
    with pytest.raises(ActionStateError):
        service.approve(action.id, by=bram)
    with sessions() as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        assert (stored.status, stored.approval_requested_by, stored.approved_by) == (
            ActionStatus.ACTIVE,
            "operator:olga",
            "operator:bram",
        )
    events = _audit(sessions, action.id)
    assert [(e, a) for e, a, _ in events] == [
        ("action_created", "operator:olga"),
        ("launch_approval_requested", "operator:olga"),
        ("launch_approved", "operator:bram"),
    ]
    assert events[-1][2] == {"requested_by": "operator:olga", "recipients": 1}


@pytest.mark.usefixtures("regions")
def test_four_eyes_a_rejected_launch_is_a_draft_again_and_other_types_need_no_approval(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    with transaction(sessions) as session:
        set_approval_rule(session, region_name="Enschede", action_type="missing_person", required=True)
    service = _service(sessions, clock, book, texts)
    olga = _operator(sessions, clock, "olga", "Enschede")
    bram = _operator(sessions, clock, "bram", "Enschede")
    action = service.create(_draft(clock), actor=olga.actor, created_by=olga.actor)
    assert action.id is not None
    assert (
        service.request_launch(action.id, by=olga, runs_from_launch=True).status
        is ActionStatus.AWAITING_APPROVAL
    )
    service.reject(action.id, by=bram, reason="Verkeerde straal")
    with sessions() as session:
        assert session.get(Action, action.id).status is ActionStatus.DRAFT  # type: ignore[union-attr]
    assert _audit(sessions, action.id)[-1] == (
        "launch_rejected",
        "operator:bram",
        {"requested_by": "operator:olga", "reason": "Verkeerde straal"},
    )

    robbery = service.create(
        ActionDraft(**{**_draft(clock).__dict__, "type": ActionType.ROBBERY}),
        actor=olga.actor,
        created_by="x",
    )
    assert robbery.id is not None
    assert service.request_launch(robbery.id, by=olga, runs_from_launch=True).status is ActionStatus.ACTIVE


@pytest.mark.usefixtures("regions")
def test_the_api_token_asks_like_anyone_but_cannot_approve_its_own_request(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    with transaction(sessions) as session:
        set_approval_rule(session, region_name=EVERYWHERE, action_type="*", required=True)
    service = _service(sessions, clock, book, texts)
    action = service.create(_draft(clock, TWENTE_WIDE), actor="api", created_by="api")
    assert action.id is not None
    assert (
        service.request_launch(action.id, by=SYSTEM, runs_from_launch=False).status
        is ActionStatus.AWAITING_APPROVAL
    )
    with pytest.raises(LaunchRefused):
        service.approve(action.id, by=SYSTEM)
    bram = _operator(sessions, clock, "bram", EVERYWHERE)
    assert service.approve(action.id, by=bram) == 0


def test_an_exercise_reaches_only_who_opted_in_and_test_participants(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts, vault: DataVault
) -> None:
    plain = seed_person(sessions, vault, clock())
    keen = seed_person(sessions, vault, clock())
    tester = seed_person(sessions, vault, clock())
    with transaction(sessions) as session:
        session.get(Participant, keen.participant_id).exercises = True  # type: ignore[union-attr]
        session.get(Participant, tester.participant_id).test = True  # type: ignore[union-attr]
    service = _service(sessions, clock, book, texts)
    real = service.create(_draft(clock), actor="api", created_by="api")
    drill = service.create(_draft(clock, exercise=True), actor="api", created_by="api")
    assert real.id is not None and drill.id is not None
    assert service.preview(drill.id).estimate.recipients == 2
    assert service.preview(drill.id).sms_text.startswith("OEFENING: Burgernet")
    assert service.request_launch(drill.id, by=SYSTEM, runs_from_launch=False).queued == 2
    assert service.request_launch(real.id, by=SYSTEM, runs_from_launch=False).queued == 3
    with sessions() as session:
        reached = session.exec(select(Delivery.participant_id).where(Delivery.action_id == drill.id)).all()
    assert sorted(reached) == sorted([keen.participant_id, tester.participant_id])
    assert plain.participant_id not in reached


@pytest.mark.parametrize("kind", [DeliveryKind.ALERT, DeliveryKind.CLOSING, DeliveryKind.RELAY_ALERT])
@pytest.mark.parametrize("channel", [ChannelKind.TELEGRAM, ChannelKind.SMS, ChannelKind.VOICE])
@pytest.mark.parametrize(("lang", "word"), [("nl", "OEFENING: "), ("en", "EXERCISE: ")])
def test_every_message_of_an_exercise_says_so_first_and_an_sms_still_fits(
    texts: AlertTexts, clock: FixedClock, kind: DeliveryKind, channel: ChannelKind, lang: str, word: str
) -> None:
    long = "Tim is sinds 14:00 vermist rond het Volkspark en droeg een blauwe jas met gele strepen. " * 3
    action = Action(
        code="BN-4K7P",
        type=ActionType.MISSING_PERSON,
        headline="Vermist: jongen (8), blauwe jas",
        description=long,
        instruction="Ziet u hem? Bel 112.",
        area={"municipalities": ["0153"]},
        created_at=clock(),
        expires_at=clock() + timedelta(hours=1),
        closing_text="Tim is gevonden.",
        exercise=True,
    )
    text = texts.text(action, kind=kind, channel=channel, lang=lang)
    assert text.startswith(word)
    real = texts.text(
        Action(**{**action.model_dump(), "exercise": False}), kind=kind, channel=channel, lang=lang
    )
    assert not real.startswith(word)
    if channel is ChannelKind.SMS:
        assert texts.sms_segments(text) <= texts.sms_segments(real)


def test_an_exercise_never_counts_in_the_figures(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts, vault: DataVault
) -> None:
    person = seed_person(sessions, vault, clock())
    with transaction(sessions) as session:
        session.get(Participant, person.participant_id).exercises = True  # type: ignore[union-attr]
    service = _service(sessions, clock, book, texts)
    for exercise in (False, True, True):
        made = service.create(_draft(clock, exercise=exercise), actor="api", created_by="api")
        assert made.id is not None
        assert service.request_launch(made.id, by=SYSTEM, runs_from_launch=False).queued == 1
    with sessions() as session:
        months = actions_per_month(session, codes=None)
        assert [(m.month, m.actions) for m in months] == [("2026-11", 1)]
        coordinator = actions_per_month(session, codes=["0153"])
        assert [m.actions for m in coordinator] == [1]
        rows = compute(session, period=month(2026, 11, "Europe/Amsterdam"), book=book, now=clock())
    enschede = next(r for r in rows if r.municipality_code == "0153")
    assert enschede.actions == 1  # reach and tips are counted from the same actions
