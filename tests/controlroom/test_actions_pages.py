"""The action pages over HTTP: form, preview, launch, live progress, tips, close, escaping, roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.alerts import AlertTexts
from bot.channels.segments import count_segments
from bot.controlroom.deps import ControlRoom
from bot.controlroom.live import action_events
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionStatus, ActionType, AuditEvent, Delivery, DeliveryKind
from storage.preferences import Preferences, save_preferences
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.actions.conftest import seed_person
from tests.conftest import FixedClock
from tests.controlroom.conftest import FakeTipFeed, csrf_of, login, page_csrf

ENSCHEDE = (52.2215, 6.8937)
FAR = (52.37, 4.89)  # Amsterdam
NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def _seed(sessions: SessionFactory, vault: DataVault, now: datetime) -> None:
    for _ in range(3):
        seed_person(sessions, vault, now, at=ENSCHEDE, channels=[ChannelKind.TELEGRAM])
    for _ in range(2):
        seed_person(sessions, vault, now, at=ENSCHEDE, channels=[ChannelKind.SMS])
    seed_person(sessions, vault, now, at=FAR, channels=[ChannelKind.SMS])


async def _create(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = await client.get("/controlroom/actions/new")
    data = {
        "csrf_token": csrf_of(form.text),
        "type": "missing_person",
        "headline": "Vermist: jongen (8) in rode jas",
        "description": "Tim, 1.30 m, blond, rode jas, blauwe fiets.",
        "instruction": "Bel 112 als u hem ziet.",
        "area_kind": "circle",
        "postcode": "7511",
        "radius_m": "2000",
        "expires_minutes": "120",
        **fields,
    }
    return await client.post("/controlroom/actions", data=data)


async def _launched(client: httpx.AsyncClient) -> int:
    created = await _create(client)
    assert created.status_code == 303, created.text
    path = created.headers["location"]
    preview = await client.get(path)
    launched = await client.post(
        f"{path}/launch", data={"csrf_token": csrf_of(preview.text), "confirm": "yes"}
    )
    assert launched.status_code == 303
    return int(path.rsplit("/", 1)[1])


async def test_preview_counts_recipients_per_channel_and_prices_sms(
    client: httpx.AsyncClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    _seed(sessions, vault, clock())
    await login(client, "olga")
    created = await _create(client)
    assert created.status_code == 303
    preview = await client.get(created.headers["location"])
    assert preview.status_code == 200
    counts = dict(re.findall(r'data-channel="(\w+)">(\d+)<', preview.text))
    assert counts["telegram"] == "3" and counts["sms"] == "2", "Amsterdam is outside the circle"
    assert re.search(r'id="preview-total">5<', preview.text)
    assert "€ 0.00" not in re.search(r'id="preview-cost">([^<]*)<', preview.text).group(1)  # type: ignore[union-attr]
    with sessions() as session:
        (action,) = session.exec(select(Action))
    assert action.status == ActionStatus.DRAFT and action.created_by == "operator:olga"
    listing = await client.get("/controlroom/actions")
    assert "20-11 15:30" in listing.text, "times in Amsterdam time (the clock says 14:30 UTC)"


async def test_preview_says_how_many_their_preferences_left_out(
    client: httpx.AsyncClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    _seed(sessions, vault, clock())
    with transaction(sessions) as session:
        save_preferences(
            session,
            participant_id=1,
            preferences=Preferences(skipped=frozenset({ActionType.MISSING_PERSON})),
            now=clock(),
        )
    await login(client, "olga")
    preview = await client.get((await _create(client)).headers["location"])
    assert re.search(r'id="preview-total">4<', preview.text)
    assert "Niet bereikt door eigen voorkeuren (soort actie of stille uren): 1<" in preview.text


async def test_launch_needs_the_confirmation(
    client: httpx.AsyncClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    _seed(sessions, vault, clock())
    await login(client, "olga")
    path = (await _create(client)).headers["location"]
    preview = await client.get(path)
    refused = await client.post(f"{path}/launch", data={"csrf_token": csrf_of(preview.text)})
    assert refused.status_code == 303 and "error=confirm" in refused.headers["location"]
    with sessions() as session:
        assert session.exec(select(Delivery)).first() is None


async def test_the_form_takes_municipalities_as_cbs_writes_them(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    response = await _create(client, area_kind="municipalities", municipalities="GM0153; gm0164, 0153")
    assert response.status_code == 303, response.text
    with sessions() as session:
        action = session.exec(select(Action).order_by(col(Action.id).desc())).first()
    assert action is not None and action.area == {"municipalities": ["0153", "0164"]}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"postcode": "1000"}, "Geen plaats gevonden voor ‘1000’", id="unknown-postcode"),
        pytest.param({"radius_m": "60000"}, "hoogstens 50 km", id="radius-too-large"),
        pytest.param({"headline": "  "}, "Vul een kop in", id="empty-headline"),
        pytest.param(
            {"area_kind": "municipalities", "municipalities": "Atlantis"},
            "Gemeente Atlantis is onbekend.",
            id="municipality",
        ),
        pytest.param(
            {"area_kind": "municipalities", "municipalities": "GM0153, GM9999"},
            "Gemeente GM9999 is onbekend.",
            id="municipality-code-unknown",
        ),
        pytest.param({"expires_minutes": "0"}, "De looptijd moet minstens 1 minuut zijn.", id="no-lifetime"),
        pytest.param(
            {"postcode": "", "lat": "", "lon": ""}, "Kies het middelpunt van het gebied", id="no-point"
        ),
        pytest.param({"postcode": "", "lat": "40.0", "lon": "3.0"}, "ligt buiten Nederland", id="outside"),
        pytest.param({"postcode": "", "lat": "noord", "lon": "6.9"}, "als getallen", id="not-a-number"),
    ],
)
async def test_invalid_form_is_shown_again_with_the_problem_in_dutch(
    client: httpx.AsyncClient, fields: dict[str, str], message: str
) -> None:
    await login(client, "olga")
    response = await _create(client, **fields)
    assert response.status_code == 422
    error = re.search(r'id="form-error">([^<]*)<', response.text)
    assert error is not None and message in error.group(1)
    assert error.group(1).startswith("Controleer het formulier: ")
    words = set(re.findall(r"[a-z_]+", error.group(1).lower()))
    assert not words & {"nan", "the", "must", "lies", "outside", "value", "error", "headline", "radius_m"}
    assert 'id="action-form"' in response.text


async def test_launch_queues_deliveries_and_the_stream_reports_progress(
    cr: ControlRoom,
    client: httpx.AsyncClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,  # type: ignore[no-untyped-def]
) -> None:
    _seed(sessions, vault, clock())
    await login(client, "olga")
    action_id = await _launched(client)
    live = await client.get(f"/controlroom/actions/{action_id}")
    assert live.status_code == 200 and 'data-channel="telegram"' in live.text
    events = action_events(cr, action_id=action_id, after=0, disconnected=_never, max_polls=1)
    first = [e async for e in events]
    assert any('"telegram":{"total":3,"queued":3,"sent":0,"delivered":0,"failed":0}' in e for e in first)
    with transaction(sessions) as session:
        session.execute(update(Delivery).values(status=DeliveryStatus.DELIVERED.value))
    again = [
        e async for e in action_events(cr, action_id=action_id, after=0, disconnected=_never, max_polls=1)
    ]
    assert any('"telegram":{"total":3,"queued":0,"sent":0,"delivered":3,"failed":0}' in e for e in again)


async def test_stream_sends_tips_after_the_last_event_id_only(
    cr: ControlRoom,
    client: httpx.AsyncClient,
    tips: FakeTipFeed,  # type: ignore[no-untyped-def]
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    for n in range(3):
        tips.add(action_id, f"tip {n}")
    events = [
        e async for e in action_events(cr, action_id=action_id, after=1, disconnected=_never, max_polls=1)
    ]
    tip_events = [e for e in events if "event: tip" in e]
    assert [e.splitlines()[0] for e in tip_events] == ["id: 2", "id: 3"]


async def test_stream_resumes_from_last_event_id_header(
    app,
    client: httpx.AsyncClient,
    tips: FakeTipFeed,  # type: ignore[no-untyped-def]
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    for text in ("eerste", "tweede", "derde"):
        tips.add(action_id, text)
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)
    body = await _read_stream(app, f"/controlroom/actions/{action_id}/stream", cookie, last_event_id="2")
    assert re.findall(r"^id: (\d+)$", body, re.MULTILINE) == ["3"]
    assert "event: progress" in body


async def _read_stream(app, path: str, cookie: str, *, last_event_id: str) -> str:  # type: ignore[no-untyped-def]
    """Call the app as a server would and hang up after a moment (the ASGI transport would wait forever)."""
    import asyncio

    chunks: list[bytes] = []
    asked = False

    async def receive() -> dict[str, object]:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(0.3)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))  # type: ignore[arg-type]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1:8080"),
            (b"cookie", cookie.encode()),
            (b"last-event-id", last_event_id.encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return b"".join(chunks).decode()


async def test_script_in_headline_and_tip_is_escaped(client: httpx.AsyncClient, tips: FakeTipFeed) -> None:
    await login(client, "olga")
    created = await _create(client, headline="<script>alert(1)</script>")
    action_id = int(created.headers["location"].rsplit("/", 1)[1])
    preview = await client.get(created.headers["location"])
    await client.post(
        f"/controlroom/actions/{action_id}/launch",
        data={"csrf_token": csrf_of(preview.text), "confirm": "yes"},
    )
    tips.add(action_id, "<img src=x onerror=alert(2)>", location="<b>bij de Jumbo</b>")
    for path in ("/controlroom/actions", f"/controlroom/actions/{action_id}"):
        page = (await client.get(path)).text
        assert "<script>alert(1)</script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    live = (await client.get(f"/controlroom/actions/{action_id}")).text
    assert "<img src=x" not in live and "&lt;img src=x onerror=alert(2)&gt;" in live
    assert "<b>bij de Jumbo</b>" not in live


async def test_when_a_tipster_saw_it_shows_on_the_wall_clock(
    client: httpx.AsyncClient, tips: FakeTipFeed
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    tips.add(action_id, "om 15:25 bij het station", seen_at="2026-11-20T14:25:00+00:00")  # storage: UTC
    live = (await client.get(f"/controlroom/actions/{action_id}")).text
    assert "<dd>15:25</dd>" in live and "2026-11-20T14:25" not in live  # Amsterdam, in November UTC+1


async def test_the_tipsters_phrase_shows_beside_the_time_or_alone_when_it_gave_none(
    client: httpx.AsyncClient, tips: FakeTipFeed
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    tips.add(
        action_id,
        "nu net 5 minuten geleden",
        seen_at="2026-11-20T13:50:00+00:00",
        seen_text="nu net 5 minuten geleden",
    )
    tips.add(action_id, "gisteren bij de Hema", seen_text="gisteren")
    live = (await client.get(f"/controlroom/actions/{action_id}")).text
    assert "<dt>Gezien</dt><dd>14:50 (‘nu net 5 minuten geleden’)</dd>" in live
    assert "<dt>Gezien</dt><dd>‘gisteren’</dd>" in live


async def test_mark_reply_and_phone_view_is_audited(
    client: httpx.AsyncClient, tips: FakeTipFeed, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    tip = tips.add(action_id, "Jongen gezien bij station", has_phone=True)
    page = await client.get(f"/controlroom/actions/{action_id}")
    token = csrf_of(page.text)
    base = f"/controlroom/actions/{action_id}/tips/{tip.id}"
    headers = {"X-Requested-With": "fetch"}
    marked = await client.post(f"{base}/mark", data={"csrf_token": token, "useful": "yes"}, headers=headers)
    assert marked.json()["verdict"] == "useful"
    replied = await client.post(
        f"{base}/reply", data={"csrf_token": token, "text": "Welke kant op?"}, headers=headers
    )
    assert replied.status_code == 200 and tips.replies == [(tip.id, "Welke kant op?", "operator:olga")]
    phone = await client.post(f"{base}/phone", data={"csrf_token": token}, headers=headers)
    assert phone.json() == {"phone": "+31612345678"}
    with sessions() as session:
        viewed = session.exec(select(AuditEvent).where(AuditEvent.event == "tip_phone_viewed")).all()
    assert [(e.actor, e.subject) for e in viewed] == [("operator:olga", f"tip:{tip.id}")]
    assert "+316" not in repr(viewed[0].detail)
    refused = await client.post(f"{base}/reply", data={"text": "zonder token"}, headers=headers)
    assert refused.status_code == 403


async def test_close_asks_for_confirmation_then_sets_the_outcome(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    form = {"csrf_token": csrf_of(page.text), "outcome": "found", "closing_text": "Tim is terecht."}
    asked = await client.post(f"/controlroom/actions/{action_id}/close", data=form)
    assert asked.status_code == 200 and 'id="close-confirm-form"' in asked.text
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None and action.status == ActionStatus.ACTIVE, (
            "nothing happens before the confirm"
        )
    closed = await client.post(f"/controlroom/actions/{action_id}/close", data={**form, "confirm": "yes"})
    assert closed.status_code == 303
    with sessions() as session:
        action = session.get(Action, action_id)
        events = session.exec(select(AuditEvent).where(AuditEvent.event == "action_closed")).all()
    assert action is not None and action.status == ActionStatus.CLOSED and action.outcome == "found"
    assert [(e.actor, e.subject) for e in events] == [("operator:olga", f"action:{action_id}")]
    again = await client.post(f"/controlroom/actions/{action_id}/close", data={**form, "confirm": "yes"})
    assert again.status_code == 303, "a second click shows the closed action"
    shown = await client.get(again.headers["location"])
    assert "Deze actie is al afgesloten." in shown.text
    with sessions() as session:
        assert len(session.exec(select(AuditEvent).where(AuditEvent.event == "action_closed")).all()) == 1


def test_no_outcome_is_preselected_on_the_live_page() -> None:
    template = (Path(__file__).parents[2] / "bot/controlroom/templates/action_live.html").read_text()
    form = template[template.index('id="close-form"') :]
    assert "<option" not in form and "checked{% endif %}" in form, "a radio is checked only when posted back"


@pytest.mark.parametrize("outcome", ["", "gevonden", "FOUND"])
async def test_close_without_an_outcome_is_refused_in_dutch(
    client: httpx.AsyncClient, sessions: SessionFactory, outcome: str
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    refused = await client.post(
        f"/controlroom/actions/{action_id}/close",
        data={
            "csrf_token": csrf_of(page.text),
            "outcome": outcome,
            "closing_text": "Klaar.",
            "confirm": "yes",
        },
    )
    assert refused.status_code == 422
    assert "Kies hoe de actie is afgelopen." in refused.text
    assert 'id="close-form"' in refused.text and "Klaar." in refused.text, "the text typed stays"
    with sessions() as session:
        action = session.get(Action, action_id)
    assert action is not None and action.status == ActionStatus.ACTIVE


@pytest.mark.parametrize(
    ("reached", "shown"), [(1, "1 deelnemer."), (7, "7 deelnemers.")], ids=["one", "seven"]
)
async def test_confirmation_counts_who_gets_the_closing_message(
    client: httpx.AsyncClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    reached: int,
    shown: str,
) -> None:
    for _ in range(reached):
        seed_person(sessions, vault, clock(), at=ENSCHEDE, channels=[ChannelKind.TELEGRAM])
    seed_person(sessions, vault, clock(), at=ENSCHEDE, channels=[ChannelKind.SMS])  # its alert fails
    await login(client, "olga")
    action_id = await _launched(client)
    with transaction(sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.channel == ChannelKind.TELEGRAM.value)  # type: ignore[arg-type]
            .values(status=DeliveryStatus.DELIVERED.value)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.channel == ChannelKind.SMS.value)  # type: ignore[arg-type]
            .values(status=DeliveryStatus.FAILED.value)
        )
    page = await client.get(f"/controlroom/actions/{action_id}")
    asked = await client.post(
        f"/controlroom/actions/{action_id}/close",
        data={"csrf_token": csrf_of(page.text), "outcome": "no_result", "closing_text": ""},
    )
    audience = re.search(r'id="close-audience"><strong>([^<]*)<', asked.text)
    assert audience is not None and audience.group(1) == f"Afloopbericht naar {shown}"
    closed = await client.post(
        f"/controlroom/actions/{action_id}/close",
        data={"csrf_token": csrf_of(page.text), "outcome": "no_result", "closing_text": "", "confirm": "yes"},
    )
    assert closed.status_code == 303
    with sessions() as session:
        closings = session.exec(select(Delivery).where(Delivery.kind == "closing")).all()
    assert len(closings) == reached, "the confirmation said how many were queued"


@pytest.mark.parametrize("suffix", ["", "/stream"], ids=["page", "stream"])
async def test_coordinator_never_sees_an_action_or_its_tips(
    app,
    client: httpx.AsyncClient,
    suffix: str,  # type: ignore[no-untyped-def]
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")
    async with other:
        await login(other, "cor")
        response = await other.get(f"/controlroom/actions/{action_id}{suffix}")
    assert response.status_code == 403


async def _never() -> bool:
    return False


async def test_stream_ends_when_the_session_ends(cr: ControlRoom, client: httpx.AsyncClient) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    token = client.cookies.get("cr_session")
    assert token
    alive = [
        e
        async for e in action_events(
            cr, action_id=action_id, after=0, disconnected=_never, session_token=token, max_polls=1
        )
    ]
    assert not any("event: logout" in e for e in alive)
    page = await client.get("/controlroom/actions")
    await client.post("/controlroom/logout", data={"csrf_token": csrf_of(page.text)})
    ended = [
        e
        async for e in action_events(
            cr, action_id=action_id, after=0, disconnected=_never, session_token=token, max_polls=5
        )
    ]
    assert ended[-1].startswith("event: logout")
    assert not any("event: progress" in e for e in ended)


async def test_the_duration_counts_from_the_launch_not_from_the_draft(
    client: httpx.AsyncClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    _seed(sessions, vault, clock())
    await login(client, "olga")
    created = await _create(client, expires_minutes="120")
    path = created.headers["location"]
    preview = await client.get(path)
    launched_at = clock.advance(minutes=25)  # the operator checked the preview for 25 minutes
    launched = await client.post(
        f"{path}/launch", data={"csrf_token": csrf_of(preview.text), "confirm": "yes"}
    )
    assert launched.status_code == 303
    with sessions() as session:
        action = session.get(Action, int(path.rsplit("/", 1)[1]))
        assert action is not None
        assert action.launched_at is not None
        assert action.expires_at.replace(tzinfo=None) == (launched_at + timedelta(minutes=120)).replace(
            tzinfo=None
        )
        assert action.launched_at.replace(tzinfo=None) == launched_at.replace(tzinfo=None)


async def test_the_form_counter_counts_what_each_channel_sends(client: httpx.AsyncClient) -> None:
    await login(client, "olga")
    csrf = await page_csrf(client, "/controlroom/actions/new")
    instruction = "Benader hem niet; bel direct 112."
    fields = {
        "type": "robbery",
        "headline": "Overval op juwelier aan de Oude Markt",
        "description": "Twee mannen op een zwarte scooter, zwarte helmen, " * 8,
        "instruction": instruction,
    }
    assert (await client.get("/controlroom/texts/alert", params=fields)).status_code == 405
    answer = await client.post("/controlroom/texts/alert", data=fields | {"csrf_token": csrf})
    assert answer.status_code == 200
    data = answer.json()
    texts = AlertTexts(Catalogue.load())
    probe = Action(
        code="BN-XXXX",
        type=ActionType.ROBBERY,
        area={},
        created_at=NOW,
        expires_at=NOW,
        **{k: v for k, v in fields.items() if k != "type"},
    )
    for lang in ("nl", "en"):
        for channel in ChannelKind:
            sent = texts.text(probe, kind=DeliveryKind.ALERT, channel=channel, lang=lang)
            got = data["texts"][lang][channel.value]
            assert (got["text"], got["chars"]) == (sent, len(sent))
        sms = data["texts"][lang]["sms"]
        assert instruction in sms["text"] and sms["segments"] == count_segments(sms["text"]).segments == 2
    nl = data["texts"]["nl"]
    assert data["counter"].startswith(f"Sms: {nl['sms']['chars']} tekens, 2 sms-deel/delen")
    assert f"WhatsApp: {nl['whatsapp']['chars']} tekens" in data["counter"]


async def test_a_draft_can_be_edited_before_the_launch(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    path = (await _create(client)).headers["location"]
    form = await client.get(f"{path}/edit")
    assert form.status_code == 200
    assert 'value="Vermist: jongen (8) in rode jas"' in form.text and f'action="{path}/edit"' in form.text
    assert 'value="2000"' in form.text, "the radius comes back"
    saved = await client.post(
        f"{path}/edit",
        data={
            "csrf_token": csrf_of(form.text),
            "type": "missing_person",
            "headline": "Vermist: jongen (8) in groene jas",
            "description": "Tim, 1.30 m, blond, groene jas.",
            "instruction": "",
            "area_kind": "circle",
            "lat": "52.2215",
            "lon": "6.8937",
            "radius_m": "1500",
            "expires_minutes": "90",
        },
    )
    assert saved.status_code == 303 and saved.headers["location"] == path
    preview = await client.get(path)
    assert "groene jas" in preview.text and "rode jas" not in preview.text
    with sessions() as session:
        (action,) = session.exec(select(Action))
        events = [e.event for e in session.exec(select(AuditEvent))]
    assert action.status == ActionStatus.DRAFT and action.area["circle"]["radius_m"] == 1500
    assert "action_edited" in events


async def test_a_draft_is_deleted_only_after_the_confirmation(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    path = (await _create(client)).headers["location"]
    preview = await client.get(path)
    assert 'id="delete-form"' in preview.text
    kept = await client.post(f"{path}/delete", data={"csrf_token": csrf_of(preview.text)})
    assert kept.status_code == 303 and kept.headers["location"].endswith("?error=delete")
    with sessions() as session:
        assert session.exec(select(Action)).first() is not None
    gone = await client.post(f"{path}/delete", data={"csrf_token": csrf_of(preview.text), "confirm": "yes"})
    assert gone.status_code == 303
    listing = await client.get(gone.headers["location"])
    assert re.search(r"Concept BN-\w+ is verwijderd\.", listing.text)
    with sessions() as session:
        assert session.exec(select(Action)).first() is None
        deleted = session.exec(select(AuditEvent).where(AuditEvent.event == "action_deleted")).all()
    assert [(e.actor, e.subject) for e in deleted] == [
        ("operator:olga", path.replace("/controlroom/actions/", "action:"))
    ]


@pytest.mark.parametrize("route", ["edit", "delete", "edit-form"])
async def test_a_launched_action_cannot_be_edited_or_deleted(
    client: httpx.AsyncClient, sessions: SessionFactory, route: str
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    page = await client.get(f"/controlroom/actions/{action_id}")
    base = f"/controlroom/actions/{action_id}"
    if route == "edit-form":
        response = await client.get(f"{base}/edit")
    else:
        data = {"csrf_token": csrf_of(page.text), "confirm": "yes", "headline": "Anders", "type": "other"}
        response = await client.post(f"{base}/{route}", data=data)
    # Back to the action's page, which says why.
    assert response.status_code == 303
    shown = await client.get(response.headers["location"])
    assert "geen concept meer (gestart, afgesloten of ingetrokken)" in shown.text
    with sessions() as session:
        action = session.get(Action, action_id)
    assert action is not None and action.status == ActionStatus.ACTIVE
    assert action.headline == "Vermist: jongen (8) in rode jas"


async def test_the_live_page_puts_new_tips_first_with_the_operators_replies_in_their_thread(
    client: httpx.AsyncClient, tips: FakeTipFeed
) -> None:
    await login(client, "olga")
    action_id = await _launched(client)
    older = tips.add(action_id, "nu net 5 min geleden bij het bankje op de Oude Markt", has_phone=True)
    tips.add(action_id, "zag net een man met rode jas bij de Hema in de Kalanderstraat", verdict="useful")
    page = await client.get(f"/controlroom/actions/{action_id}")
    token = csrf_of(page.text)
    await client.post(
        f"/controlroom/actions/{action_id}/tips/{older.id}/reply",
        data={"csrf_token": token, "text": "Welke kant liep hij op?"},
        headers={"X-Requested-With": "fetch"},
    )
    live = (await client.get(f"/controlroom/actions/{action_id}")).text
    assert live.index('id="tips-h"') < live.index('id="progress-h"'), "the tips come before the progress"
    assert live.index('id="tip-2"') < live.index('id="tip-1"'), "newest first"
    thread = re.search(r'<ol class="thread"[^>]*>(.*?)</ol>', live, re.DOTALL)
    assert thread is not None and "Welke kant liep hij op?" in thread.group(1)
    assert re.search(r'<li class="out"><span class="who">Meldkamer · 15:33</span>Welke kant', thread.group(1))
    useful = live[live.index('id="tip-2"') :]
    assert re.search(r'<p class="verdict" >Beoordeeld: nuttig</p>', useful)
    tip1 = live[live.index('id="tip-1"') :]
    verdicts, reply = tip1.index('class="inline js-fetch verdicts"'), tip1.index('class="js-fetch reply"')
    assert tip1.index("</div>", verdicts) < reply, "Verstuur sits in its own form, outside the verdict row"
    for key in ("all", "new", "useful", "not_useful"):
        assert f'data-filter="{key}"' in live


async def test_an_edited_duration_also_counts_from_the_launch(
    client: httpx.AsyncClient, sessions: SessionFactory, clock: FixedClock
) -> None:
    await login(client, "olga")
    path = (await _create(client, expires_minutes="120")).headers["location"]
    clock.advance(minutes=10)
    form = await client.get(f"{path}/edit")
    assert 'name="expires_minutes" type="number"' in form.text and 'value="120"' in form.text, "as chosen"
    values = {
        "csrf_token": csrf_of(form.text),
        "type": "missing_person",
        "headline": "Vermist: jongen (8) in groene jas",
        "description": "Tim, 1.30 m, blond, groene jas.",
        "instruction": "Bel 112 als u hem ziet.",
        "area_kind": "circle",
        "lat": "52.2215",
        "lon": "6.8937",
        "radius_m": "1500",
        "expires_minutes": "90",
    }
    assert (await client.post(f"{path}/edit", data=values)).status_code == 303
    preview = await client.get(path)
    launched_at = clock.advance(minutes=25)
    launched = await client.post(
        f"{path}/launch", data={"csrf_token": csrf_of(preview.text), "confirm": "yes"}
    )
    assert launched.status_code == 303
    with sessions() as session:
        (action,) = session.exec(select(Action))
    assert action.expires_at.replace(tzinfo=None) == (launched_at + timedelta(minutes=90)).replace(
        tzinfo=None
    )


async def test_an_instruction_too_long_for_an_sms_is_refused_in_dutch(client: httpx.AsyncClient) -> None:
    await login(client, "olga")
    refused = await _create(client, instruction="Benader hem niet en houd afstand, bel 112. " * 6)
    assert refused.status_code == 422
    assert "De instructie past niet in twee sms-delen en wordt nooit ingekort" in refused.text
