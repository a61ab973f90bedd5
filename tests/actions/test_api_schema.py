"""schemathesis against the REST API's own OpenAPI schema, with the bearer token: no answer is a 5xx.

The app is composed here from the API routers (as the runtime mounts them), on the test's database
(SQLite, or PostgreSQL when DATABASE_URL says so), with a few people and actions already stored so that
generated ids sometimes hit real rows and launches reach someone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.config import load_settings
from bot.messages import ChannelKind
from bot.texts import Catalogue
from storage.actions import ActionDraft, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import ActionType
from tests.actions.conftest import seed_person
from tests.conftest import FixedClock

TOKEN = "schemathesis-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def api_schema(sessions: SessionFactory, vault: DataVault, book: PostcodeBook, clock: FixedClock) -> Any:
    """The OpenAPI schema of an app holding the actions API, with stored actions in every state."""
    settings_ = load_settings(api_token=TOKEN, dispatch_rate_limits=False)
    for channels in ([ChannelKind.TELEGRAM], [ChannelKind.SMS, ChannelKind.WHATSAPP]):
        seed_person(sessions, vault, clock(), channels=channels)
    with transaction(sessions) as session:
        for n, launch in enumerate([False, True, True]):
            draft = ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline=f"Vermist: meisje {n}",
                description="Meisje van 8, rode jas, blauwe rugzak.",
                instruction="Bel 112 als u haar ziet.",
                area={"municipalities": ["0153"]},
                expires_at=clock() + timedelta(hours=4),
            )
            action = create_action(session, draft=draft, now=clock(), created_by="test")
            if launch:
                launch_action(session, action=action, targets=[], now=clock())
    app = FastAPI()
    app.include_router(
        actions_router(
            sessions=sessions,
            settings=settings_,
            clock=clock,
            book=book,
            texts=AlertTexts(Catalogue.load()),
        )
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(api_schema: Any) -> list[Any]:
    """Every operation of the schema (the pytest plugin of schemathesis 4 does not run on pytest 9)."""
    found = [result.ok() for result in api_schema.get_all_operations()]
    assert found
    return found


def test_no_request_makes_the_api_fail(api_schema: Any) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                case.body,
                response.text[:500],
            )

        no_server_error()


def test_without_the_token_every_route_is_401(api_schema: Any) -> None:
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def refused(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": "Bearer wrong"})
            assert response.status_code == 401, (case.method, case.formatted_path)

        refused()
