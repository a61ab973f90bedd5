"""Admin pages: the audit log (security events and operators' actions apart) and the accounts.

An admin creates accounts, resets a password, ends all of an account's sessions and deactivates or
reactivates an account. Ending sessions (which a reset and a deactivation do too) deletes them in the
store, so the next request of that browser is refused, and rings the live streams of this process so
they check their session now and end (other processes' streams see it at their next poll).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select

from bot.config import Settings
from bot.controlroom.auth import AdminPoster, AdminVisitor
from bot.controlroom.deps import PREFIX, ControlRoom, Visitor, render, room
from bot.controlroom.notices import sealed, unsealed
from bot.texts import MissingText
from storage.db import transaction
from storage.models import ActionType, AuditEvent, Operator, OperatorRole
from storage.operators import (
    InvalidOperator,
    OperatorExists,
    UnknownOperator,
    active_admins,
    check_new_password,
    create_operator,
    end_sessions,
    get_operator,
    list_operators,
    session_counts,
    set_active,
    set_password_hash,
)
from storage.participants import SECURITY_PREFIX, audit
from storage.password_policy import MIN_LENGTH
from storage.regions import approval_rules, list_regions, region_names

router = APIRouter()
AUDIT_PAGE = 500
AUDIT_KINDS = ("actions", "security")


@router.get("/audit", response_class=HTMLResponse)
async def audit_log(
    request: Request,
    visitor: AdminVisitor,
    kind: Annotated[str, Query(max_length=16)] = "",
    event: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=80)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
) -> HTMLResponse:
    """Who did what and when, newest first; filter by kind (actions or security), event, actor, start date."""
    cr = room(request)
    query = (
        select(AuditEvent).order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()).limit(AUDIT_PAGE)
    )
    if kind == "security":
        query = query.where(col(AuditEvent.event).startswith(SECURITY_PREFIX))
    elif kind == "actions":
        query = query.where(~col(AuditEvent.event).startswith(SECURITY_PREFIX))
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
        audit_kinds=AUDIT_KINDS,
        security_prefix=SECURITY_PREFIX,
        filters={"kind": kind if kind in AUDIT_KINDS else "", "event": event, "actor": actor, "since": since},
    )


@router.get("/operators", response_class=HTMLResponse)
async def operators(request: Request, visitor: AdminVisitor) -> HTMLResponse:
    """The accounts with their open sessions and what an admin can do to each, and a form for a new one."""
    cr = room(request)
    return _operators_page(
        request, visitor, flash=unsealed(cr, request, "flash"), error=unsealed(cr, request, "error")
    )


def _operators_page(
    request: Request, visitor: Visitor, *, flash: str = "", error: str = "", status_code: int = 200
) -> HTMLResponse:
    cr = room(request)
    with cr.sessions() as session:
        accounts = list_operators(session)
        open_sessions = session_counts(session)
        regions = list_regions(session)
        members = region_names(session)
        rules = approval_rules(session)
    return render(
        request,
        "operators.html",
        lang=visitor.language,
        visitor=visitor,
        section="operators",
        accounts=accounts,
        open_sessions=open_sessions,
        regions=regions,
        members=members,
        rules=rules,
        action_types=list(ActionType),
        municipality_names=cr.book.municipalities(),
        roles=list(OperatorRole),
        password_min=MIN_LENGTH,
        flash=flash,
        error=error,
        status_code=status_code,
    )


def _problem(cr: ControlRoom, visitor: Visitor, problem: InvalidOperator | OperatorExists) -> str:
    reason = problem.reason if isinstance(problem, InvalidOperator) else "exists"
    key = f"controlroom.operators.problem.{reason}"
    try:
        return cr.catalogue.render(visitor.language, key)
    except MissingText:
        return str(problem)


@router.post("/operators")
async def add_operator(
    request: Request,
    visitor: AdminPoster,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=512)],
    role: Annotated[OperatorRole, Form()],
    municipalities: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Create an account (the password must pass the policy; it is hashed off the event loop)."""
    cr = room(request)
    try:
        codes = cr.book.municipality_codes(municipalities.replace(";", ",").split(","))
    except LookupError as unknown:
        name = str(unknown.args[0]).strip()[:60]
        problem = cr.catalogue.render(visitor.language, "controlroom.form.problem.municipality", name=name)
        return _operators_page(request, visitor, error=problem)
    try:
        check_new_password(password, username=username.strip())
        password_hash = await cr.passwords.hash(password)
        now = cr.clock()
        with transaction(cr.sessions) as session:
            operator = create_operator(
                session,
                username=username,
                password=password,
                password_hash=password_hash,
                role=role,
                municipalities=codes,
                now=now,
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
        return _operators_page(request, visitor, error=_problem(cr, visitor, problem), status_code=422)
    flash = cr.catalogue.render(visitor.language, "controlroom.operators.created", username=operator.username)
    return _operators_page(request, visitor, flash=flash)


def _done(cr: ControlRoom, visitor: Visitor, key: str, username: str, **params: object) -> Response:
    flash = cr.catalogue.render(visitor.language, f"controlroom.operators.{key}", username=username, **params)
    return RedirectResponse(f"{PREFIX}/operators?{sealed(cr, flash=flash)}", status_code=303)


def _load(session: object, operator_id: int) -> Operator:
    try:
        return get_operator(session, operator_id=operator_id)  # type: ignore[arg-type]
    except UnknownOperator:
        raise HTTPException(status_code=404) from None


@router.post("/operators/{operator_id}/sessions/end")
async def end_all_sessions(request: Request, visitor: AdminPoster, operator_id: int) -> Response:
    """Log the account out everywhere at once (its open pages and live streams end too)."""
    cr = room(request)
    now = cr.clock()
    with transaction(cr.sessions) as session:
        operator = _load(session, operator_id)
        ended = end_sessions(session, operator_id=operator_id)
        audit(
            session,
            now=now,
            actor=visitor.actor,
            event="controlroom.operator_sessions_ended",
            subject=f"operator:{operator.username}",
            detail={"sessions": ended},
        )
        name = operator.username
    cr.recheck.ring()
    return _done(cr, visitor, "sessions_ended", name, count=ended)


@router.post("/operators/{operator_id}/active")
async def set_account_active(
    request: Request, visitor: AdminPoster, operator_id: int, active: Annotated[str, Form(max_length=3)]
) -> Response:
    """Deactivate an account (its sessions and live streams end at once) or reactivate it."""
    cr = room(request)
    now = cr.clock()
    on = active == "yes"
    with transaction(cr.sessions) as session:
        operator = _load(session, operator_id)
        if not on and operator.id == visitor.operator.id:
            raise HTTPException(status_code=409, detail="an admin cannot deactivate their own account")
        if not on and operator.role == OperatorRole.ADMIN and operator.active and active_admins(session) <= 1:
            raise HTTPException(status_code=409, detail="the last active admin cannot be deactivated")
        ended = set_active(session, operator=operator, active=on)
        audit(
            session,
            now=now,
            actor=visitor.actor,
            event="controlroom.operator_activated" if on else "controlroom.operator_deactivated",
            subject=f"operator:{operator.username}",
            detail={} if on else {"sessions": ended},
        )
        name = operator.username
    cr.recheck.ring()
    return _done(cr, visitor, "activated" if on else "deactivated", name)


@router.post("/operators/{operator_id}/password")
async def reset_password(
    request: Request,
    visitor: AdminPoster,
    operator_id: int,
    password: Annotated[str, Form(max_length=512)],
) -> Response:
    """Give the account a new password (the policy applies); its sessions end, so it logs in anew."""
    cr = room(request)
    with cr.sessions() as session:
        name = _load(session, operator_id).username
    try:
        check_new_password(password, username=name)
    except InvalidOperator as problem:
        return _operators_page(request, visitor, error=_problem(cr, visitor, problem), status_code=422)
    password_hash = await cr.passwords.hash(password)
    now = cr.clock()
    with transaction(cr.sessions) as session:
        operator = _load(session, operator_id)
        set_password_hash(session, operator=operator, password_hash=password_hash)
        ended = end_sessions(session, operator_id=operator_id)
        audit(
            session,
            now=now,
            actor=visitor.actor,
            event="controlroom.operator_password_reset",
            subject=f"operator:{operator.username}",
            detail={"sessions": ended},
        )
    cr.throttle.forget_account(name)
    cr.recheck.ring()
    return _done(cr, visitor, "password_reset", name)


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
