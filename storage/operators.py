"""Control-room accounts: argon2 password hashes, the password policy, deactivation, server-side sessions.

Failed logins are not counted here: an account is never locked (anyone could lock anyone out), the
control room slows guessing per client and per account instead (`bot/controlroom/throttle.py`).
The `failed_logins` and `locked_until` columns are left from the lock-out and no longer written.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.models import Operator, OperatorRole, OperatorSession
from storage.password_policy import WeakPassword, check_password

SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
USERNAME_MAX = 64


class OperatorExists(ValueError):
    """The username is taken."""


class InvalidOperator(ValueError):
    """A username, password or role that cannot be used; `reason` names which rule (for the page)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownOperator(LookupError):
    """No account with that id or name."""


class SessionInvalid(LookupError):
    """No live session for a token: unknown, expired or idle too long."""


@dataclass(frozen=True)
class OpenedSession:
    """A new session: the token for the cookie (never stored) and the stored row."""

    token: str
    row: OperatorSession


def default_hasher() -> PasswordHasher:
    """argon2id with the library's recommended parameters."""
    return PasswordHasher()


def token_digest(token: str) -> str:
    """What the session table stores for a cookie token: a stolen table holds no usable session."""
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were written as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def create_operator(
    session: Session,
    *,
    username: str,
    password: str,
    role: OperatorRole,
    now: datetime,
    municipalities: Iterable[str] = (),
    hasher: PasswordHasher | None = None,
    password_hash: str | None = None,
) -> Operator:
    """Add an account (`password_hash`: hashed already). Raises OperatorExists or InvalidOperator."""
    name = username.strip()
    if not name or len(name) > USERNAME_MAX or any(ch.isspace() for ch in name):
        raise InvalidOperator("username must be 1-64 characters without spaces", "username")
    check_new_password(password, username=name)
    codes = sorted({code.strip() for code in municipalities if code.strip()})
    if role == OperatorRole.COORDINATOR and not codes:
        raise InvalidOperator("a coordinator needs at least one municipality code", "municipalities")
    if session.exec(select(Operator).where(Operator.username == name)).first() is not None:
        raise OperatorExists(name)
    operator = Operator(
        username=name,
        password_hash=password_hash or (hasher or default_hasher()).hash(password),
        role=role,
        municipalities=codes if role == OperatorRole.COORDINATOR else [],
        created_at=now,
    )
    session.add(operator)
    session.flush()
    return operator


def get_operator(session: Session, *, operator_id: int) -> Operator:
    """The account with this id. Raises UnknownOperator."""
    operator = session.get(Operator, operator_id)
    if operator is None:
        raise UnknownOperator(str(operator_id))
    return operator


def list_operators(session: Session) -> list[Operator]:
    """Every account, by name."""
    return list(session.exec(select(Operator).order_by(col(Operator.username))))


def check_new_password(password: str, *, username: str) -> None:
    """The password policy for a new or reset password. Raises InvalidOperator (reason: the rule)."""
    try:
        check_password(password, username=username)
    except WeakPassword as weak:
        raise InvalidOperator(str(weak), f"password_{weak.reason}") from None


def find_operator(session: Session, *, username: str) -> Operator:
    """The account with this name. Raises UnknownOperator."""
    operator = session.exec(select(Operator).where(Operator.username == username.strip())).first()
    if operator is None:
        raise UnknownOperator(username.strip())
    return operator


def login_hash(session: Session, *, username: str) -> tuple[int | None, str]:
    """The id and password hash of the active account with this name; (None, "") when there is none."""
    operator = session.exec(
        select(Operator).where(Operator.username == username.strip(), col(Operator.active).is_(True))
    ).first()
    if operator is None:
        return None, ""
    return operator.id, operator.password_hash


def set_password_hash(session: Session, *, operator: Operator, password_hash: str) -> None:
    """Store a new hash of the account's password (a reset, or today's argon2 parameters at login)."""
    operator.password_hash = password_hash
    operator.failed_logins = 0
    operator.locked_until = None
    session.add(operator)


def end_sessions(session: Session, *, operator_id: int) -> int:
    """End every session of an account at once; returns how many were open."""
    result = session.execute(delete(OperatorSession).where(col(OperatorSession.operator_id) == operator_id))
    return int(getattr(result, "rowcount", 0) or 0)


def set_active(session: Session, *, operator: Operator, active: bool) -> int:
    """Deactivate (its sessions end with it; returns how many) or reactivate an account."""
    operator.active = active
    session.add(operator)
    if active or operator.id is None:
        return 0
    return end_sessions(session, operator_id=operator.id)


def active_admins(session: Session) -> int:
    """How many active admin accounts there are (the last one cannot be deactivated)."""
    query = (
        select(func.count())
        .select_from(Operator)
        .where(Operator.role == OperatorRole.ADMIN, col(Operator.active).is_(True))
    )
    return int(session.exec(query).one())


def session_counts(session: Session) -> dict[int, int]:
    """Open sessions per account id."""
    rows = session.execute(
        select(OperatorSession.operator_id, func.count()).group_by(col(OperatorSession.operator_id))
    ).all()
    return {int(operator_id): int(count) for operator_id, count in rows}


def open_session(
    session: Session,
    *,
    operator: Operator,
    now: datetime,
    language: str = "nl",
    lifetime: timedelta = SESSION_LIFETIME,
) -> OpenedSession:
    """Start a session with fresh random token and CSRF token (a new id at every login: no fixation)."""
    assert operator.id is not None
    token = secrets.token_urlsafe(32)
    row = OperatorSession(
        id=token_digest(token),
        operator_id=operator.id,
        csrf_token=secrets.token_urlsafe(32),
        language=language,
        created_at=now,
        expires_at=now + lifetime,
        last_seen=now,
    )
    session.add(row)
    session.flush()
    return OpenedSession(token=token, row=row)


def find_session(
    session: Session, *, token: str, now: datetime, idle: timedelta = SESSION_IDLE
) -> tuple[OperatorSession, Operator]:
    """The live session for a cookie token and its account. Raises SessionInvalid."""
    if not token:
        raise SessionInvalid("no token")
    row = session.get(OperatorSession, token_digest(token))
    if row is None:
        raise SessionInvalid("unknown")
    if _aware(row.expires_at) <= now or _aware(row.last_seen) + idle <= now:
        session.delete(row)
        raise SessionInvalid("expired")
    operator = session.get(Operator, row.operator_id)
    if operator is None or not operator.active:
        raise SessionInvalid("account gone")
    return row, operator


def touch_session(session: Session, *, row: OperatorSession, now: datetime) -> None:
    """Record activity, at most once a minute, to keep writes down."""
    if now - _aware(row.last_seen) >= timedelta(minutes=1):
        row.last_seen = now
        session.add(row)


def set_session_language(session: Session, *, row: OperatorSession, language: str) -> None:
    """Remember the page language the operator chose."""
    row.language = language
    session.add(row)


def close_session(session: Session, *, token: str) -> None:
    """End a session (logout); unknown tokens are ignored."""
    session.execute(delete(OperatorSession).where(col(OperatorSession.id) == token_digest(token)))


def purge_sessions(session: Session, *, now: datetime) -> int:
    """Delete expired sessions; returns how many."""
    result = session.execute(delete(OperatorSession).where(col(OperatorSession.expires_at) <= now))
    return int(getattr(result, "rowcount", 0) or 0)
