"""Login, logout and the language switch.

A login answers the same for an unknown, an inactive and a real account: the same status, page and
time (the password is checked against a dummy hash when there is no account, in the same worker
threads). Guessing is slowed per client address and per account by `LoginThrottle` (a 429 with
`Retry-After`, decided before any account is looked at), never by locking the account.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bot.controlroom.auth import (
    AnyPoster,
    anonymous_language,
    check_pre_csrf,
    clear_cookie,
    current_visitor,
    set_cookie,
    verify_csrf,
)
from bot.controlroom.deps import (
    LANG_COOKIE,
    PRE_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    ControlRoom,
    new_token,
    render,
    room,
)
from bot.controlroom.throttle import Verdict
from bot.texts import LANGUAGES
from storage.db import transaction
from storage.models import Operator
from storage.operators import (
    close_session,
    login_hash,
    open_session,
    set_password_hash,
    set_session_language,
)
from storage.participants import audit, audit_repeated

router = APIRouter()


def _login_page(
    request: Request, *, error: str | None = None, status_code: int = 200, retry_after: int | None = None
) -> HTMLResponse:
    token = request.cookies.get(PRE_COOKIE) or new_token()
    response = render(
        request,
        "login.html",
        lang=anonymous_language(request),
        csrf=token,
        error=error,
        status_code=status_code,
    )
    set_cookie(response, room(request), PRE_COOKIE, token, max_age=12 * 3600)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def client_address(request: Request) -> str:
    """The address the request came from (uvicorn has applied the trusted proxies' headers)."""
    return request.client.host if request.client else "unknown"


def _client_actor(cr: ControlRoom, address: str) -> str:
    # An address is personal data: the audit log keeps a keyed digest, enough to group one client's tries.
    return "client:" + cr.vault.lookup_hash(f"controlroom-client:{address}")[:16]


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    """The login form."""
    return _login_page(request)


def _refused(request: Request, cr: ControlRoom, verdict: Verdict | None) -> HTMLResponse:
    lang = anonymous_language(request)
    if verdict is None:
        message = cr.catalogue.render(lang, "controlroom.auth.login_failed")
        return _login_page(request, error=message, status_code=401)
    seconds = max(1, math.ceil(verdict.retry_after.total_seconds()))
    message = cr.catalogue.render(lang, "controlroom.auth.login_throttled", seconds=seconds)
    return _login_page(request, error=message, status_code=429, retry_after=seconds)


@router.post("/login", dependencies=[Depends(check_pre_csrf)])
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=512)],
) -> Response:
    """Check the password (off the event loop); a new session id on success (the old cookie is dropped)."""
    cr = room(request)
    name = username.strip()
    address = client_address(request)
    verdict = cr.throttle.check(client=address, account=name)
    if not verdict.allowed:
        # No password check and, most of the time, no database: the refusal must cost next to nothing.
        tally = cr.throttle.refused(client=address, account=name)
        if tally:
            with transaction(cr.sessions) as session:
                operator_id, _ = login_hash(session, username=name)
                audit_repeated(
                    session,
                    now=cr.clock(),
                    actor=_client_actor(cr, address),
                    event="security.login_throttled",
                    subject=f"operator:{name}" if operator_id is not None else None,
                    detail={"reason": verdict.reason},
                    count=tally,
                )
        return _refused(request, cr, verdict)
    with cr.sessions() as session:
        operator_id, stored = login_hash(session, username=name)
    # The typed name is logged only when it is an account's: a password typed into the name field is not.
    subject = f"operator:{name}" if operator_id is not None else None
    right = await cr.passwords.verify(stored, password)
    now = cr.clock()
    if right:
        # Today's argon2 parameters for an old hash, computed off the loop like the check itself.
        rehashed = await cr.passwords.hash(password) if cr.passwords.needs_rehash(stored) else None
        with transaction(cr.sessions) as session:
            operator = session.get(Operator, operator_id)
            if operator is not None and operator.active:
                if rehashed:
                    set_password_hash(session, operator=operator, password_hash=rehashed)
                old = request.cookies.get(SESSION_COOKIE)
                if old:
                    close_session(session, token=old)
                lang = anonymous_language(request)
                opened = open_session(session, operator=operator, now=now, language=lang)
                audit(session, now=now, actor=f"operator:{operator.username}", event="controlroom.login")
                cr.throttle.succeeded(client=address, account=name)
                response = RedirectResponse(f"{PREFIX}/", status_code=303)
                set_cookie(response, cr, SESSION_COOKIE, opened.token)
                clear_cookie(response, cr, PRE_COOKIE)
                return response
    cr.throttle.failed(client=address, account=name)
    with transaction(cr.sessions) as session:
        audit_repeated(
            session,
            now=now,
            actor=_client_actor(cr, address),
            event="security.login_failed",
            subject=subject,
            detail={} if operator_id is not None else {"reason": "unknown_user"},
        )
    return _refused(request, cr, None)


@router.post("/logout")
async def logout(request: Request, visitor: AnyPoster) -> Response:
    """End the session."""
    cr = room(request)
    with transaction(cr.sessions) as session:
        close_session(session, token=visitor.token)
        audit(session, now=cr.clock(), actor=visitor.actor, event="controlroom.logout")
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    clear_cookie(response, cr, SESSION_COOKIE)
    return response


@router.post("/language")
async def switch_language(request: Request) -> Response:
    """Switch the page language: kept in the session when logged in, in a cookie otherwise."""
    cr = room(request)
    form = await request.form()
    lang = str(form.get("lang", ""))
    back = str(form.get("back", f"{PREFIX}/"))
    if not back.startswith(f"{PREFIX}/"):
        back = f"{PREFIX}/"
    if lang not in LANGUAGES:
        lang = "nl"
    if request.cookies.get(SESSION_COOKIE):
        visitor = current_visitor(request)
        verify_csrf(visitor.csrf, str(form.get("csrf_token", "")))
        with transaction(cr.sessions) as session:
            row = session.merge(visitor.row)
            set_session_language(session, row=row, language=lang)
    else:
        await check_pre_csrf(request)
    response = RedirectResponse(back, status_code=303)
    set_cookie(response, cr, LANG_COOKIE, lang, max_age=365 * 24 * 3600)
    return response
