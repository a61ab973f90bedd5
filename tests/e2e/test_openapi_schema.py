"""schemathesis against the whole app's own OpenAPI schema (`/openapi.json` of
`create_app(build_runtime(settings))`: actions and tips API, health, simulator), with the bearer token:
no answer is a 5xx.

The app runs on the test's database (SQLite, or PostgreSQL when DATABASE_URL says so: CI runs both),
with people, a launched action, a draft and a tip already stored, so that generated ids sometimes hit
real rows. The pytest plugin of schemathesis 4 does not run on pytest 9: the tests drive its strategies.
The event streams are left out (an endless response); tests/controlroom/test_security.py reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.conftest import FixedClock
from tests.controlroom.whole_app import TOKEN, Whole, build_whole, client_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 20


@pytest.fixture
async def whole(database_url: str, clock: FixedClock) -> AsyncIterator[Whole]:
    """The whole app with stored rows."""
    built = await build_whole(
        database_url,
        clock,
        headline="Vermist: Noah (8), blauwe jas",
        tip_text="Ik zag hem bij de Jumbo richting station",
        draft_headline="Overval op juwelier",
    )
    yield built
    built.runtime.engine.dispose()


def operations(whole: Whole) -> list[Any]:
    """Every operation of the app's schema but the event streams."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", whole.app)
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if not op.path.endswith("/stream")]


def test_the_schema_covers_the_whole_app(whole: Whole) -> None:
    paths = {(op.method.upper(), op.path) for op in operations(whole)}
    for expected in (
        ("GET", "/healthz"),
        ("POST", "/api/v1/actions"),
        ("POST", "/api/v1/actions/{action_id}/launch"),
        ("GET", "/api/v1/tips"),
        ("POST", "/api/v1/tips/{tip_id}/reply"),
        ("POST", "/simulator/messages"),
    ):
        assert expected in paths


def test_no_request_makes_the_app_fail(whole: Whole) -> None:
    failures: list[tuple[str, str, Any, int, str]] = []
    calls: dict[str, int] = {}
    for operation in operations(whole):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH)
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    (case.method, case.formatted_path, case.body, response.status_code, response.text[:300])
                )

        no_server_error()
    assert failures == []
    assert len(calls) == len(operations(whole)), "every operation was called"


def test_without_the_token_every_api_route_is_401(whole: Whole) -> None:
    for operation in operations(whole):
        if not operation.path.startswith("/api/"):
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def refused(case: schemathesis.Case) -> None:
            response = case.call(headers={"Authorization": "Bearer wrong"})
            assert response.status_code == 401, (case.method, case.formatted_path)

        refused()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
    ],
)
async def test_the_tip_stream_needs_the_token(whole: Whole, headers: dict[str, str]) -> None:
    async with client_for(whole.app) as http:
        response = await http.get("/api/v1/tips/stream", headers=headers)
    assert response.status_code == 401
