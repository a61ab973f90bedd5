"""Control-room accounts: argon2 password hashes, lock-out after repeated failures, server-side sessions."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlmodel import Session, col, select

from storage.models import Operator, OperatorRole, OperatorSession

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE = timedelta(hours=2)
USERNAME_MAX = 64
PASSWORD_MIN = 10


class OperatorExists(ValueError):
    """The username is taken."""


class InvalidOperator(ValueError):
    """A username, password or role that cannot be used."""


class UnknownOperator(LookupError):
    """No account with that id or name."""


class LoginFailed(Exception):
    """Wrong username or password (deliberately not saying which)."""


class AccountLocked(Exception):
    """Too many failed logins; the account opens again at `until`."""

    def __init__(self, until: datetime) -> None:
        super().__init__(f"locked until {until.isoformat()}")
        self.until = until


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
) -> Operator:
    """Add an account. Raises OperatorExists or InvalidOperator."""
    name = username.strip()
    if not name or len(name) > USERNAME_MAX or any(ch.isspace() for ch in name):
        raise InvalidOperator("username must be 1-64 characters without spaces")
    if len(password) < PASSWORD_MIN:
        raise InvalidOperator(f"password must have at least {PASSWORD_MIN} characters")
    codes = sorted({code.strip() for code in municipalities if code.strip()})
    if role == OperatorRole.COORDINATOR and not codes:
        raise InvalidOperator("a coordinator needs at least one municipality code")
    if session.exec(select(Operator).where(Operator.username == name)).first() is not None:
        raise OperatorExists(name)
    operator = Operator(
        username=name,
        password_hash=(hasher or default_hasher()).hash(password),
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


def authenticate(
    session: Session,
    *,
    username: str,
    password: str,
    now: datetime,
    hasher: PasswordHasher | None = None,
    max_failures: int = MAX_FAILED_LOGINS,
    lockout: timedelta = LOCKOUT,
) -> Operator:
    """Check a login; counts failures and locks the account after `max_failures` in a row.

    Raises LoginFailed or AccountLocked. The caller commits, so that a failure is counted too.
    """
    hasher = hasher or default_hasher()
    operator = session.exec(select(Operator).where(Operator.username == username.strip())).first()
    if operator is None or not operator.active:
        # Spend the same time as a real check, so response times do not tell which names exist.
        _verify(hasher, _dummy_hash(hasher), password)
        raise LoginFailed()
    if operator.locked_until is not None and _aware(operator.locked_until) > now:
        raise AccountLocked(_aware(operator.locked_until))
    if not _verify(hasher, operator.password_hash, password):
        operator.failed_logins += 1
        if operator.failed_logins >= max_failures:
            operator.locked_until = now + lockout
            operator.failed_logins = 0
            session.add(operator)
            raise AccountLocked(now + lockout)
        session.add(operator)
        raise LoginFailed()
    operator.failed_logins = 0
    operator.locked_until = None
    if hasher.check_needs_rehash(operator.password_hash):
        operator.password_hash = hasher.hash(password)
    session.add(operator)
    return operator


_DUMMY: dict[int, str] = {}


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = id(hasher)
    if key not in _DUMMY:
        _DUMMY[key] = hasher.hash(secrets.token_hex(16))
    return _DUMMY[key]


def _verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def unlock_operator(session: Session, *, operator_id: int) -> Operator:
    """Lift a lock-out. Raises UnknownOperator."""
    operator = get_operator(session, operator_id=operator_id)
    operator.failed_logins = 0
    operator.locked_until = None
    session.add(operator)
    return operator


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
