"""Reconfirmation: the yearly question, its answer, reminders, expiry and erasure, quiet hours, the cap."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.channels.segments import count_segments
from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.texts import Catalogue
from scheduler.jobs import JobContext, in_quiet_hours
from storage.db import SessionFactory
from storage.models import (
    Address,
    AuditEvent,
    ChannelIdentity,
    OptOut,
    Participant,
    ParticipantStatus,
    ReconfirmRequest,
)
from tests.conftest import FixedClock
from tests.scheduler.conftest import FakeChannel, reconfirm_and_send, register, rows, say

ANNE = "+31612345678"
BART = "+31687654321"


def participant(sessions: SessionFactory, n: int = 0) -> Participant:
    """The n-th participant, freshly read."""
    return rows(sessions, Participant)[n]


async def test_participant_of_366_days_gets_the_question_answers_ja_and_stays(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
) -> None:
    await register(router, clock, ANNE)
    clock.advance(days=364)
    await reconfirm_and_send(job_context)
    assert channel.sent == []

    clock.advance(days=2)  # day 366
    result = await reconfirm_and_send(job_context)
    assert result.counts.get("asked") == 1
    [question] = channel.to(ANNE)
    assert "JA" in question.text and question.buttons == ("JA", "NEE")

    clock.advance(days=3)
    replies = await say(router, clock, ANNE, ["ja"])
    assert [r.text for r in replies] == [job_context.catalogue.render("nl", "reconfirm.stay")]
    anne = participant(sessions)
    assert anne.status is ParticipantStatus.ACTIVE
    assert anne.confirmed_at is not None
    assert anne.confirmed_at.replace(tzinfo=UTC) > clock() - timedelta(minutes=1)
    with sessions() as session:
        assert session.exec(select(ReconfirmRequest)).all() == []

    # Past the day the silent ones expire, Anne is still there and nothing more was sent.
    clock.advance(days=40)
    await reconfirm_and_send(job_context)
    assert participant(sessions).status is ParticipantStatus.ACTIVE
    assert len(channel.to(ANNE)) == 1


async def test_nee_to_the_question_leaves_and_erases(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
) -> None:
    await register(router, clock, ANNE)
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    replies = await say(router, clock, ANNE, ["NEE"])
    assert replies[-1].text == job_context.catalogue.render("nl", "reconfirm.left")
    anne = participant(sessions)
    assert anne.status is ParticipantStatus.UNSUBSCRIBED and anne.phone_enc is None


async def test_a_message_that_is_not_ja_is_no_sign_of_life(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    await register(router, clock, ANNE)
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    clock.advance(days=1)
    await say(router, clock, ANNE, ["hallo"])
    with sessions() as session:
        assert session.get(ReconfirmRequest, participant(sessions).id) is not None
    clock.advance(days=30)
    await reconfirm_and_send(job_context)
    assert participant(sessions).status is ParticipantStatus.EXPIRED


def _personal_values(sessions: SessionFactory, participant_id: int, phone: str, name: str) -> set[str]:
    """Every value that identifies the person: clear and encrypted, as stored before the erasure."""
    values = {phone, phone.removeprefix("+"), name}
    with sessions() as session:
        person = session.get(Participant, participant_id)
        assert person is not None
        values |= {v for v in (person.name_enc, person.phone_enc) if v}
        for identity in session.exec(
            select(ChannelIdentity).where(ChannelIdentity.participant_id == participant_id)
        ):
            if identity.address_enc:
                values.add(identity.address_enc)
        for address in session.exec(select(Address).where(Address.participant_id == participant_id)):
            values |= {address.postcode, f"{address.postcode} {address.house_number}"}
    return values


def _every_stored_value(sessions: SessionFactory) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-empty cell of every table in the database."""
    found = []
    with sessions() as session:
        bind = session.get_bind()
        inspector = sa.inspect(bind)
        for table in inspector.get_table_names():
            columns = [c["name"] for c in inspector.get_columns(table)]
            for row in session.execute(sa.text(f'SELECT * FROM "{table}"')).all():
                for column, value in zip(columns, row, strict=True):
                    if value is not None:
                        found.append((table, column, str(value)))
    return found


async def test_silent_participant_is_reminded_then_erased_on_day_396(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
) -> None:
    await register(router, clock, ANNE, name="Anneke Zwijgzaam", address="7511 AB 12")
    await register(router, clock, BART, name="Bart", address="1012 AB 5")
    anne_id = participant(sessions, 0).id
    assert anne_id is not None
    personal = _personal_values(sessions, anne_id, ANNE, "Anneke Zwijgzaam")
    assert len(personal) >= 5
    stored_before = _every_stored_value(sessions)
    visible = {p for p in personal if any(p in v for _, _, v in stored_before)}
    # What is stored is encrypted (name, phone, chat) or plain (postcode): the scan must see all of it.
    assert len(visible) >= 4 and "7511 AB" in visible, "the scan sees the stored personal data"
    assert _reachable(sessions) == {anne_id, participant(sessions, 1).id}, "registration made them reachable"
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    await say(router, clock, BART, ["JA"])  # Bart answers, Anne stays silent

    sent_on: dict[int, int] = {}
    for day in range(367, 397):
        clock.advance(days=1)
        before = len(channel.to(ANNE))
        await reconfirm_and_send(job_context)
        if len(channel.to(ANNE)) > before:
            sent_on[day] = len(channel.to(ANNE)) - before
        if day == 395:
            assert participant(sessions, 0).status is ParticipantStatus.ACTIVE
    assert sent_on == {373: 1, 380: 1}, "a reminder after 7 and after 14 days"
    reminder = job_context.catalogue.render("nl", "reconfirm.reminder", expires="21-12-2027")
    assert channel.to(ANNE)[-1].text == reminder

    anne, bart = participant(sessions, 0), participant(sessions, 1)
    assert anne.status is ParticipantStatus.EXPIRED
    assert bart.status is ParticipantStatus.ACTIVE
    assert (anne.name_enc, anne.phone_enc, anne.phone_hash, anne.preferred_channel) == (
        None,
        None,
        None,
        None,
    )
    leaks = [(t, c) for t, c, v in _every_stored_value(sessions) if any(p in v for p in personal)]
    assert leaks == []
    with sessions() as session:
        assert session.exec(select(Address).where(Address.participant_id == anne_id)).all() == []
        assert session.exec(select(ReconfirmRequest)).all() == []
        assert session.exec(select(OptOut)).all() == [], "expiry is not an opt-out"
        expired = session.exec(select(AuditEvent).where(AuditEvent.event == "participant_expired")).all()
        assert [e.detail["municipality_code"] for e in expired] == ["0153"]  # Enschede
    assert _reachable(sessions) == {bart.id}, "expiry ends the reach rows too"


def _reachable(sessions: SessionFactory) -> set[int | None]:
    """Who the reach table (what selection reads) holds, and who selection finds anywhere in NL."""
    from storage.models import ReachPoint
    from storage.targeting import Circle, select_recipients

    with sessions() as session:
        held = set(session.exec(select(ReachPoint.participant_id)).all())
        everyone = select_recipients(session, area=Circle(52.2, 5.3, 50_000 * 4), at=datetime.now(UTC))
    found: set[int | None] = {r.participant_id for r in everyone}
    assert found <= held
    return held


QUIET = [
    pytest.param(datetime(2026, 6, 1, 19, 59, tzinfo=UTC), False, id="21:59-summer"),
    pytest.param(datetime(2026, 6, 1, 20, 0, tzinfo=UTC), True, id="22:00-summer"),
    pytest.param(datetime(2026, 6, 2, 5, 59, tzinfo=UTC), True, id="07:59-summer"),
    pytest.param(datetime(2026, 6, 2, 6, 0, tzinfo=UTC), False, id="08:00-summer"),
    pytest.param(datetime(2026, 12, 1, 21, 30, tzinfo=UTC), True, id="22:30-winter"),
    pytest.param(datetime(2026, 12, 2, 6, 59, tzinfo=UTC), True, id="07:59-winter"),
    pytest.param(datetime(2026, 12, 2, 7, 0, tzinfo=UTC), False, id="08:00-winter"),
    pytest.param(datetime(2026, 12, 2, 12, 0, tzinfo=UTC), False, id="13:00-winter"),
]


@pytest.mark.parametrize(("now", "quiet"), QUIET)
def test_quiet_hours_are_amsterdam_time(now: datetime, quiet: bool) -> None:
    assert in_quiet_hours(now, start=time(22), end=time(8), timezone="Europe/Amsterdam") is quiet


@pytest.mark.parametrize(
    ("start", "end", "local", "quiet"),
    [
        pytest.param(time(1), time(5), time(0, 59), False, id="daytime-window-before"),
        pytest.param(time(1), time(5), time(3), True, id="daytime-window-inside"),
        pytest.param(time(8), time(8), time(3), False, id="empty-window"),
    ],
)
def test_quiet_hours_other_windows(start: time, end: time, local: time, quiet: bool) -> None:
    now = datetime(2026, 12, 2, local.hour, local.minute, tzinfo=UTC)  # UTC+1 in winter
    assert in_quiet_hours(now, start=start, end=end, timezone="UTC") is quiet


async def test_no_question_goes_out_in_quiet_hours(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
) -> None:
    clock.now = datetime(2025, 11, 20, 21, 0, tzinfo=UTC)
    await register(router, clock, ANNE)
    clock.now = datetime(2026, 11, 21, 21, 0, tzinfo=UTC)  # 22:00 in Amsterdam, 366 days later
    for _ in range(10 * 60 // 5):  # every 5 minutes through the night
        result = await reconfirm_and_send(job_context)
        assert channel.sent == [], f"sent at {clock()}"
        assert result.note == "quiet hours"
        clock.advance(minutes=5)
    assert clock() >= datetime(2026, 11, 22, 7, 0, tzinfo=UTC)  # 08:00 local
    await reconfirm_and_send(job_context)
    assert len(channel.sent) == 1


async def test_expiry_is_not_held_back_by_quiet_hours(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    await register(router, clock, ANNE)
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    clock.now = clock.now.replace(hour=23)  # midnight in Amsterdam
    clock.advance(days=30)
    await reconfirm_and_send(job_context)
    assert participant(sessions).status is ParticipantStatus.EXPIRED


def _seed_due(sessions: SessionFactory, clock: FixedClock, vault: object, count: int) -> list[str]:
    """`count` SMS participants confirmed 400 days ago (a bulk import), straight into storage."""
    from storage.crypto import DataVault
    from storage.vocabulary import ChannelKind

    assert isinstance(vault, DataVault)
    phones = [f"+316{10000000 + i}" for i in range(count)]
    then = clock() - timedelta(days=400)
    with sessions() as session:
        for phone in phones:
            person = Participant(
                status=ParticipantStatus.ACTIVE,
                phone_enc=vault.encrypt(phone),
                phone_hash=vault.lookup_hash(phone),
                preferred_channel=ChannelKind.SMS,
                created_at=then,
                consent_at=then,
                confirmed_at=then,
            )
            session.add(person)
            session.flush()
            session.add(
                ChannelIdentity(
                    participant_id=person.id,
                    channel=ChannelKind.SMS,
                    address_hash=vault.lookup_hash(phone),
                    address_enc=vault.encrypt(phone),
                    created_at=then,
                )
            )
        session.commit()
    return phones


async def test_at_most_n_a_minute_spread_until_all_are_asked(
    sessions: SessionFactory,
    clock: FixedClock,
    vault: object,
    job_context: JobContext,
    channel: FakeChannel,
    settings: Settings,
) -> None:
    settings.reconfirm_per_minute = 10
    phones = _seed_due(sessions, clock, vault, 25)
    clock.now = clock.now.replace(second=5)
    per_minute = []
    for _minute in range(4):
        before = len(channel.sent)
        await reconfirm_and_send(job_context)
        clock.advance(seconds=30)
        await reconfirm_and_send(
            job_context
        )  # a second run in the same minute (run-job, a restart) adds nothing
        per_minute.append(len(channel.sent) - before)
        clock.advance(seconds=30)
    assert per_minute == [10, 10, 5, 0]
    assert sorted(m.recipient for m in channel.sent) == sorted(phones)


async def test_whatsapp_outside_the_24h_window_gets_the_template(
    sessions: SessionFactory,
    clock: FixedClock,
    vault: object,
    job_context: JobContext,
    channel: FakeChannel,
    settings: Settings,
) -> None:
    from storage.vocabulary import ChannelKind

    settings.reconfirm_whatsapp_template = "HXreconfirm"
    _seed_due(sessions, clock, vault, 1)
    with sessions() as session:
        identity = session.exec(select(ChannelIdentity)).one()
        identity.channel = ChannelKind.WHATSAPP
        person = session.exec(select(Participant)).one()
        person.preferred_channel = ChannelKind.WHATSAPP
        session.add(identity)
        session.add(person)
        session.commit()
    await reconfirm_and_send(job_context)
    [message] = channel.sent
    assert message.channel is ChannelKind.WHATSAPP
    assert message.template_sid == "HXreconfirm" and message.template_variables == {"1": "20-12-2026"}


@pytest.mark.parametrize("lang", ["nl", "en"])
@pytest.mark.parametrize("key", ["question", "reminder", "stay", "left", "retry"])
def test_reconfirmation_sms_fit_two_gsm7_segments(catalogue: Catalogue, lang: str, key: str) -> None:
    text = catalogue.render(lang, f"reconfirm.{key}", expires="31-12-2026")
    counted = count_segments(text)
    assert counted.segments <= 2 and counted.encoding.value == "GSM-7"


async def test_stop_after_the_question_ends_the_reminders(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
) -> None:
    await register(router, clock, ANNE)
    clock.advance(days=366)
    await reconfirm_and_send(job_context)
    await say(router, clock, ANNE, ["STOP"])
    clock.advance(days=8)
    result = await reconfirm_and_send(job_context)
    assert len(channel.to(ANNE)) == 1 and result.counts.get("reminded") is None
    with sessions() as session:
        assert session.exec(select(ReconfirmRequest)).all() == []
    assert participant(sessions).status is ParticipantStatus.UNSUBSCRIBED
