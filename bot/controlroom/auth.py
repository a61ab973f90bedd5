"""Who is asking: session cookies, CSRF checks and role checks, as FastAPI dependencies."""

# No `from __future__ import annotations` here: FastAPI must see the local dependencies in Annotated.
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response

from bot.controlroom.deps import LANG_COOKIE, PRE_COOKIE, PREFIX, SESSION_COOKIE, ControlRoom, Visitor, room
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES
from storage.db import transaction
from storage.models import OperatorRole
from storage.operators import SessionInvalid, find_session, touch_session

LOGIN_PATH = f"{PREFIX}/login"


def _login_redirect(request: Request) -> HTTPException:
    # Pages send the browser to the login form; the live stream and fetches get a plain 401.
    if request.url.path.endswith("/stream") or request.headers.get("accept", "").startswith("text/event"):
        return HTTPException(status_code=401, detail="login required")
    return HTTPException(status_code=303, headers={"Location": LOGIN_PATH})


def current_visitor(request: Request) -> Visitor:
    """The logged-in operator, else a redirect to the login page."""
    cr = room(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    now = cr.clock()
    with transaction(cr.sessions) as session:
        try:
            row, operator = find_session(session, token=token, now=now)
        except SessionInvalid:
            raise _login_redirect(request) from None
        touch_session(session, row=row, now=now)
    return Visitor(operator=operator, row=row, token=token)


def require(*roles: OperatorRole) -> Callable[[Request], Visitor]:
    """A dependency that lets only these roles in (403 for the others)."""
    allowed = frozenset(roles)

    def check(visitor: Annotated[Visitor, Depends(current_visitor)]) -> Visitor:
        if visitor.role not in allowed:
            raise HTTPException(status_code=403, detail="not allowed for this role")
        return visitor

    return check  # type: ignore[return-value]


async def form_csrf(request: Request) -> str:
    """The CSRF token a form posted (empty when none)."""
    form = await request.form()
    value = form.get("csrf_token", "")
    return value if isinstance(value, str) else ""


def verify_csrf(expected: str, posted: str) -> None:
    """403 unless the posted token equals the expected one (compared in constant time)."""
    if not expected or not posted or not hmac.compare_digest(expected, posted):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token")


def csrf_checked(*roles: OperatorRole) -> Callable[..., Awaitable[Visitor]]:
    """Like `require`, and the posted form must carry this session's CSRF token (403 otherwise)."""
    role_check = require(*roles)

    async def check(
        visitor: Annotated[Visitor, Depends(role_check)],
        posted: Annotated[str, Depends(form_csrf)],
    ) -> Visitor:
        verify_csrf(visitor.csrf, posted)
        return visitor

    return check


async def check_pre_csrf(request: Request) -> None:
    """Before login: the form's token must equal the pre-session cookie (double submit)."""
    verify_csrf(request.cookies.get(PRE_COOKIE, ""), await form_csrf(request))


def anonymous_language(request: Request) -> str:
    """The page language before login: the language cookie, else Dutch."""
    lang = request.cookies.get(LANG_COOKIE, DEFAULT_LANGUAGE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def set_cookie(
    response: Response, cr: ControlRoom, name: str, value: str, *, max_age: int | None = None
) -> None:
    """A control-room cookie: HttpOnly, SameSite=Strict, Secure on https, only sent to /controlroom."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=cr.secure_cookies,
    )


def clear_cookie(response: Response, cr: ControlRoom, name: str) -> None:
    """Remove a control-room cookie."""
    response.delete_cookie(name, path=PREFIX, httponly=True, samesite="strict", secure=cr.secure_cookies)


ALL_ROLES = (OperatorRole.OPERATOR, OperatorRole.COORDINATOR, OperatorRole.ADMIN)
TIP_ROLES = (OperatorRole.OPERATOR, OperatorRole.ADMIN)
ACTION_ROLES = (OperatorRole.OPERATOR, OperatorRole.ADMIN)
ADMIN_ROLES = (OperatorRole.ADMIN,)

AnyVisitor = Annotated[Visitor, Depends(require(*ALL_ROLES))]
ActionVisitor = Annotated[Visitor, Depends(require(*ACTION_ROLES))]
AdminVisitor = Annotated[Visitor, Depends(require(*ADMIN_ROLES))]
AnyPoster = Annotated[Visitor, Depends(csrf_checked(*ALL_ROLES))]
ActionPoster = Annotated[Visitor, Depends(csrf_checked(*ACTION_ROLES))]
AdminPoster = Annotated[Visitor, Depends(csrf_checked(*ADMIN_ROLES))]
