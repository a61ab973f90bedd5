"""Login, logout and the language switch."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import select

from bot.controlroom.auth import (
    AnyPoster,
    anonymous_language,
    check_pre_csrf,
    clear_cookie,
    current_visitor,
    set_cookie,
    verify_csrf,
)
from bot.controlroom.deps import LANG_COOKIE, PRE_COOKIE, PREFIX, SESSION_COOKIE, new_token, render, room
from bot.texts import LANGUAGES
from storage.db import transaction
from storage.models import Operator
from storage.operators import (
    AccountLocked,
    LoginFailed,
    authenticate,
    close_session,
    open_session,
    set_session_language,
)
from storage.participants import audit

router = APIRouter()


def _login_page(request: Request, *, error: str | None = None, status_code: int = 200) -> HTMLResponse:
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
    return response


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> HTMLResponse:
    """The login form."""
    return _login_page(request)


@router.post("/login", dependencies=[Depends(check_pre_csrf)])
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=512)],
) -> Response:
    """Check the password; a new session id on success (the old cookie, if any, is dropped)."""
    cr = room(request)
    now = cr.clock()
    name = username.strip()
    with transaction(cr.sessions) as session:
        known = session.exec(select(Operator).where(Operator.username == name)).first() is not None
        subject = f"operator:{name}" if known else None
        try:
            operator = authenticate(session, username=name, password=password, now=now, hasher=cr.hasher)
        except AccountLocked as locked:
            audit(session, now=now, actor="controlroom", event="controlroom.login_locked", subject=subject)
            minutes = max(1, math.ceil((locked.until - now).total_seconds() / 60))
            error = ("login_locked", minutes)
        except LoginFailed:
            detail = {} if known else {"reason": "unknown_user"}
            audit(
                session,
                now=now,
                actor="controlroom",
                event="controlroom.login_failed",
                subject=subject,
                detail=detail,
            )
            error = ("login_failed", 0)
        else:
            old = request.cookies.get(SESSION_COOKIE)
            if old:
                close_session(session, token=old)
            opened = open_session(session, operator=operator, now=now, language=anonymous_language(request))
            audit(session, now=now, actor=f"operator:{operator.username}", event="controlroom.login")
            response = RedirectResponse(f"{PREFIX}/", status_code=303)
            set_cookie(response, cr, SESSION_COOKIE, opened.token)
            clear_cookie(response, cr, PRE_COOKIE)
            return response
    key, minutes = error
    t_key = f"controlroom.auth.{key}"
    message = cr.catalogue.render(anonymous_language(request), t_key, minutes=minutes)
    return _login_page(request, error=message, status_code=401 if key == "login_failed" else 423)


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
