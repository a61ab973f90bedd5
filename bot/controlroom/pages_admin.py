"""Admin pages: the audit log (filterable) and the accounts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from bot.config import Settings
from bot.controlroom.auth import AdminPoster, AdminVisitor
from bot.controlroom.deps import PREFIX, render, room
from storage.db import transaction
from storage.models import AuditEvent, OperatorRole
from storage.operators import (
    InvalidOperator,
    OperatorExists,
    UnknownOperator,
    create_operator,
    list_operators,
    unlock_operator,
)
from storage.participants import audit

router = APIRouter()
AUDIT_PAGE = 500


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(
    request: Request,
    visitor: AdminVisitor,
    event: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=80)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
) -> HTMLResponse:
    """Who did what and when, newest first; filter by event, actor (part of the name) and start date."""
    cr = room(request)
    query = (
        select(AuditEvent).order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()).limit(AUDIT_PAGE)
    )
    if event:
        query = query.where(col(AuditEvent.event).startswith(event))
    if actor:
        query = query.where(col(AuditEvent.actor).contains(actor))
    if since:
        try:
            start = datetime.fromisoformat(since).replace(tzinfo=UTC)
        except ValueError:
            raise HTTPException(status_code=422, detail="since must be a date, YYYY-MM-DD") from None
        query = query.where(col(AuditEvent.at) >= start)
    with cr.sessions() as session:
        events = list(session.exec(query))
        kinds = sorted(set(session.exec(select(AuditEvent.event).distinct())))
    return render(
        request,
        "audit.html",
        lang=visitor.language,
        visitor=visitor,
        section="audit",
        events=events,
        kinds=kinds,
        filters={"event": event, "actor": actor, "since": since},
    )


@router.get("/operators", response_class=HTMLResponse)
async def operators(
    request: Request, visitor: AdminVisitor, flash: str = "", error: str = ""
) -> HTMLResponse:
    """The accounts, with a form for a new one."""
    cr = room(request)
    with cr.sessions() as session:
        accounts = list_operators(session)
    return render(
        request,
        "operators.html",
        lang=visitor.language,
        visitor=visitor,
        section="operators",
        accounts=accounts,
        roles=list(OperatorRole),
        now=cr.clock(),
        flash=flash,
        error=error,
    )


@router.post("/operators")
async def add_operator(
    request: Request,
    visitor: AdminPoster,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=512)],
    role: Annotated[OperatorRole, Form()],
    municipalities: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Create an account."""
    cr = room(request)
    now = cr.clock()
    try:
        codes = cr.book.municipality_codes(municipalities.replace(";", ",").split(","))
    except LookupError as unknown:
        name = str(unknown.args[0]).strip()[:60]
        problem = cr.catalogue.render(visitor.language, "controlroom.form.problem.municipality", name=name)
        return await operators(request, visitor, error=problem)
    try:
        with transaction(cr.sessions) as session:
            operator = create_operator(
                session,
                username=username,
                password=password,
                role=role,
                municipalities=codes,
                now=now,
                hasher=cr.hasher,
            )
            audit(
                session,
                now=now,
                actor=visitor.actor,
                event="controlroom.operator_created",
                subject=f"operator:{operator.username}",
                detail={"role": role.value},
            )
    except (OperatorExists, InvalidOperator) as problem:
        return await operators(request, visitor, error=str(problem) or "exists")
    flash = cr.catalogue.render(visitor.language, "controlroom.operators.created", username=operator.username)
    return await operators(request, visitor, flash=flash)


@router.post("/operators/{operator_id}/unlock")
async def unlock(request: Request, visitor: AdminPoster, operator_id: int) -> Response:
    """Lift a lock-out."""
    cr = room(request)
    try:
        with transaction(cr.sessions) as session:
            operator = unlock_operator(session, operator_id=operator_id)
            audit(
                session,
                now=cr.clock(),
                actor=visitor.actor,
                event="controlroom.operator_unlocked",
                subject=f"operator:{operator.username}",
            )
    except UnknownOperator:
        raise HTTPException(status_code=404) from None
    return RedirectResponse(f"{PREFIX}/operators", status_code=303)


SECRET_WORDS = ("token", "secret", "key", "password", "auth", "sid")


def visible_settings(settings: Settings) -> list[tuple[str, str]]:
    """Every setting by its environment name, secrets masked and passwords in URLs removed."""
    rows = []
    for name, value in sorted(settings.model_dump().items()):
        shown = str(value)
        if value and any(word in name for word in SECRET_WORDS):
            shown = "••••••"
        elif isinstance(value, str) and "@" in value and "://" in value:
            scheme, rest = value.split("://", 1)
            shown = f"{scheme}://••••••@{rest.rsplit('@', 1)[1]}"
        rows.append((name.upper(), shown))
    return rows


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request, visitor: AdminVisitor) -> HTMLResponse:
    """The running settings (read-only; they come from the environment), secrets masked."""
    cr = room(request)
    return render(
        request,
        "settings.html",
        lang=visitor.language,
        visitor=visitor,
        section="settings",
        rows=visible_settings(cr.settings),
    )
