"""Figures and the audit log: coordinators see only their municipalities; CSV export; audit filters."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import httpx
import pytest

from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.participants import audit
from storage.vocabulary import ChannelKind
from tests.actions.conftest import seed_person
from tests.conftest import FixedClock
from tests.controlroom.conftest import login


@pytest.fixture
def people(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    """Two in Enschede (0153), one of them on two channels, and one in Amsterdam (0363)."""
    now = clock()
    seed_person(sessions, vault, now, channels=[ChannelKind.TELEGRAM], municipality="0153")
    seed_person(sessions, vault, now, channels=[ChannelKind.SMS, ChannelKind.WHATSAPP], municipality="0153")
    seed_person(sessions, vault, now, at=(52.37, 4.89), channels=[ChannelKind.SMS], municipality="0363")


def _csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=";"))


@pytest.mark.parametrize(
    ("user", "codes"),
    [
        pytest.param("olga", {"0153", "0363"}, id="operator-sees-all"),
        pytest.param("cor", {"0153"}, id="coordinator"),
    ],
)
async def test_participants_per_municipality_csv(
    client: httpx.AsyncClient, people: None, user: str, codes: set[str]
) -> None:
    await login(client, user)
    response = await client.get("/controlroom/figures.csv?table=participants")
    assert response.status_code == 200
    header, *rows = _csv(response.text)
    assert header[:3] == ["municipality_code", "municipality", "participants"]
    assert {r[0] for r in rows} == codes
    enschede = next(r for r in rows if r[0] == "0153")
    by_channel = dict(zip(header[3:], enschede[3:], strict=True))
    assert enschede[2] == "2" and by_channel == {"telegram": "1", "whatsapp": "1", "sms": "1", "voice": "0"}


async def test_figures_page_shows_the_table(client: httpx.AsyncClient, people: None) -> None:
    await login(client, "cor")
    page = await client.get("/controlroom/figures")
    assert page.status_code == 200
    assert 'id="participants-table"' in page.text and "0363" not in page.text


async def test_coordinator_has_no_actions_menu(client: httpx.AsyncClient) -> None:
    await login(client, "cor")
    page = await client.get("/controlroom/figures")
    assert "/controlroom/actions" not in page.text and "/controlroom/audit" not in page.text


async def test_audit_log_filters_by_event_and_actor(
    client: httpx.AsyncClient, sessions: SessionFactory, clock: FixedClock
) -> None:
    with transaction(sessions) as session:
        audit(session, now=clock(), actor="operator:olga", event="tip_phone_viewed", subject="tip:7")
        audit(session, now=clock(), actor="api", event="action_created", subject="action:1")
    await login(client, "ada")
    everything = await client.get("/controlroom/audit")
    assert "tip:7" in everything.text and "action:1" in everything.text
    only = await client.get("/controlroom/audit?event=tip_phone_viewed")
    assert "tip:7" in only.text and "action:1" not in only.text
    by_actor = await client.get("/controlroom/audit?actor=api")
    assert "action:1" in by_actor.text and "tip:7" not in by_actor.text
    bad = await client.get("/controlroom/audit?since=yesterday")
    assert bad.status_code == 422


async def test_settings_page_masks_secrets(client: httpx.AsyncClient, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.settings.api_token = "very-secret-token"
    runtime.settings.database_url = "postgresql+psycopg://bot:hunter2@db.example/burgernet"
    await login(client, "ada")
    page = await client.get("/controlroom/settings")
    assert page.status_code == 200
    assert "very-secret-token" not in page.text and "hunter2" not in page.text
    assert "API_TOKEN" in page.text and "db.example/burgernet" in page.text
    await login(client, "olga")
    assert (await client.get("/controlroom/settings")).status_code == 403


async def test_coordinator_counts_only_actions_that_reached_their_municipality(
    client: httpx.AsyncClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    from storage.actions import ActionDraft, Target, create_action, launch_action
    from storage.models import ActionType

    enschede = seed_person(sessions, vault, clock(), municipality="0153")
    amsterdam = seed_person(sessions, vault, clock(), at=(52.37, 4.89), municipality="0363")
    for person, lat_lon in ((enschede, (52.22, 6.89)), (amsterdam, (52.37, 4.89))):
        with transaction(sessions) as session:
            action = create_action(
                session,
                draft=ActionDraft(
                    type=ActionType.ROBBERY,
                    headline="Overval",
                    description="Twee mannen op een scooter",
                    instruction="",
                    area={"circle": {"lat": lat_lon[0], "lon": lat_lon[1], "radius_m": 1000}},
                    expires_at=clock.advance(minutes=1) + timedelta(hours=1),
                ),
                now=clock(),
                created_by="test",
            )
            channel, identity = next(iter(person.identities.items()))
            launch_action(
                session,
                action=action,
                targets=[Target(person.participant_id, identity, channel, "nl")],
                now=clock(),
            )
    await login(client, "cor")
    coordinator = _csv((await client.get("/controlroom/figures.csv?table=actions")).text)
    await login(client, "olga")
    everyone = _csv((await client.get("/controlroom/figures.csv?table=actions")).text)
    assert coordinator[1][:2] == ["2026-11", "1"]
    assert everyone[1][:2] == ["2026-11", "2"]
