"""The control room's live page of an action says how many neighbourhood groups it reached."""

from __future__ import annotations

from datetime import timedelta

import httpx

from storage.actions import ActionDraft, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import ActionType, ChannelIdentity, RelayPlatform
from storage.relays import RELAY_RULES_VERSION, RelayDraft, register_relay
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE
from tests.conftest import FixedClock
from tests.controlroom.conftest import app, client, cr, login, runtime, tips  # noqa: F401  (fixtures)


async def test_the_live_page_counts_the_groups_reached(
    client: httpx.AsyncClient,  # noqa: F811
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    clock: FixedClock,
) -> None:
    now = clock()
    with transaction(sessions) as session:
        coordinator = ChannelIdentity(
            channel=ChannelKind.SMS,
            address_hash=vault.lookup_hash("+31612345678"),
            address_enc=vault.encrypt("+31612345678"),
            created_at=now,
        )
        session.add(coordinator)
        session.flush()
        draft = RelayDraft(
            group_name="Buurtpreventie Roombeek",
            platform=RelayPlatform.WHATSAPP,
            area={
                "postcodes": [{"pc4": "7511", "lat": book.lookup("7511").lat, "lon": book.lookup("7511").lon}]
            },
            municipalities=["0153"],
            estimated_members=80,
            language="nl",
            rules_version=RELAY_RULES_VERSION,
            rules_at=now,
        )
        register_relay(session, coordinator=coordinator, draft=draft, now=now)
        action = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline="Vermist: jongen (8)",
                description="",
                instruction="",
                area={"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 2000}},
                expires_at=now + timedelta(hours=1),
            ),
            now=now,
            created_by="test",
        )
        launch_action(session, action=action, targets=[], now=now)
        action_id = action.id

    await login(client, "olga")
    page = await client.get(f"/controlroom/actions/{action_id}")
    assert page.status_code == 200
    assert 'id="relays"' in page.text and "Buurtgroepen: 1" in page.text
