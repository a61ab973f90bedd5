"""One-time codes that prove a typed phone number belongs to the person who typed it.

A code is six random digits, valid for a few minutes and a few tries, checked against a keyed hash
(HMAC with the look-up key and a per-code salt: six digits alone would be guessed from a plain hash).
The row is also the code's outbox entry: the message holding the code waits encrypted until the
dispatcher sends it, and is wiped then. Limits per number, per sender and for the whole installation
keep the system from being used to send codes at will. A number that said STOP gets no code (the row
is `withheld`, so the limits and the answers stay the same, and nobody can tell from outside).

Written here rather than taken from a one-time-password library: TOTP/HOTP (pyotp) derive codes from
a shared secret the phone never holds; what we need is a random code delivered by SMS and a counter.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.crypto import DataVault
from storage.models import ChannelIdentity, ChannelKind, PhoneVerification
from storage.participants import is_opted_out, phone_hash

CODE_DIGITS = 6
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
WITHHELD = "withheld"


@dataclass(frozen=True)
class CodeLimits:
    """How long a code lives, how often it may be guessed, and how many may be sent."""

    valid_minutes: int = 10
    max_tries: int = 3
    window_minutes: int = 60
    per_number: int = 3
    """Codes one number may receive per window, whoever asks."""
    per_sender: int = 3
    """Codes one chat may ask for per window, whatever numbers it types."""
    overall: int = 200
    """Codes the whole installation sends per window."""


class CodeRefused(Exception):
    """No code now: a limit was reached (`reason`: number, sender or overall)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CodeCheck(StrEnum):
    """What a typed code turned out to be."""

    VERIFIED = "verified"
    WRONG = "wrong"
    EXPIRED = "expired"
    USED_UP = "used_up"


def new_code() -> str:
    """Six random digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def _hash(vault: DataVault, *, salt: str, code: str) -> str:
    return vault.lookup_hash(f"phone-verification:{salt}:{code}")


def request_code(
    session: Session,
    *,
    vault: DataVault,
    phone: str,
    channel: ChannelKind,
    requester_id: int,
    compose: Callable[[str], str],
    now: datetime,
    limits: CodeLimits,
) -> PhoneVerification:
    """Queue a new code for `phone` on `channel`, asked by identity `requester_id`. Raises CodeRefused.

    `compose` turns the code into the message to send; the code itself is not kept.
    """
    key = phone_hash(vault=vault, phone=phone)
    since = now - timedelta(minutes=limits.window_minutes)
    recent = col(PhoneVerification.created_at) > since
    count = func.count(col(PhoneVerification.id))
    overall = session.exec(select(count).where(recent)).one()
    if overall >= limits.overall:
        raise CodeRefused("overall")
    by_sender = session.exec(
        select(count).where(recent, col(PhoneVerification.requester_id) == requester_id)
    ).one()
    if by_sender >= limits.per_sender:
        raise CodeRefused("sender")
    by_number = session.exec(select(count).where(recent, col(PhoneVerification.phone_hash) == key)).one()
    if by_number >= limits.per_number:
        raise CodeRefused("number")
    code = new_code()
    salt = secrets.token_hex(8)
    withheld = _number_opted_out(session, key=key, channel=channel)
    row = PhoneVerification(
        phone_hash=key,
        requester_id=requester_id,
        channel=channel,
        salt=salt,
        code_hash=_hash(vault, salt=salt, code=code),
        created_at=now,
        expires_at=now + timedelta(minutes=limits.valid_minutes),
        state=WITHHELD if withheld else QUEUED,
        message_enc=None if withheld else vault.encrypt(compose(code)),
        phone_enc=None if withheld else vault.encrypt(phone),
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _number_opted_out(session: Session, *, key: str, channel: ChannelKind) -> bool:
    if is_opted_out(session, phone_hash=key):
        return True
    identity = session.exec(
        select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.address_hash == key)
    ).first()
    return identity is not None and identity.opted_out


def check_code(
    session: Session,
    *,
    vault: DataVault,
    verification_id: int,
    requester_id: int,
    code: str,
    now: datetime,
    limits: CodeLimits,
) -> CodeCheck:
    """Check a typed code against the open verification; a wrong one uses up a try."""
    row = session.get(PhoneVerification, verification_id)
    if row is None or row.requester_id != requester_id or row.verified_at is not None:
        return CodeCheck.EXPIRED
    if row.tries >= limits.max_tries:
        return CodeCheck.USED_UP
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
    if now >= expires:
        return CodeCheck.EXPIRED
    typed = "".join(code.split())
    if hmac.compare_digest(_hash(vault, salt=row.salt, code=typed), row.code_hash) and row.state != WITHHELD:
        row.verified_at = now
        session.add(row)
        session.flush()
        return CodeCheck.VERIFIED
    row.tries += 1
    session.add(row)
    session.flush()
    return CodeCheck.USED_UP if row.tries >= limits.max_tries else CodeCheck.WRONG


def verified_phone_hash(session: Session, *, verification_id: int) -> str | None:
    """The keyed hash of the number a verification proved, or None if it was not verified."""
    row = session.get(PhoneVerification, verification_id)
    return row.phone_hash if row is not None and row.verified_at is not None else None


@dataclass(frozen=True)
class QueuedCode:
    """A code message due to be sent."""

    id: int
    channel: ChannelKind
    phone_hash: str
    phone_enc: str
    message_enc: str
    attempts: int
    language: str | None = None
    """The language of whoever asked for the code: a code said in a call is spoken with its voice."""


def claim_codes(
    session: Session, *, channel: ChannelKind, now: datetime, lease: timedelta, limit: int = 20
) -> list[QueuedCode]:
    """Due code messages of a channel, leased to the caller; a code already expired is given up.

    Nothing is written when nothing is due: the dispatcher asks on every wake-up.
    """
    rows = session.exec(
        select(PhoneVerification)
        .where(
            col(PhoneVerification.state) == QUEUED,
            col(PhoneVerification.channel) == channel,
            col(PhoneVerification.next_attempt_at) <= now,
            (col(PhoneVerification.lease_until).is_(None)) | (col(PhoneVerification.lease_until) <= now),
        )
        .order_by(col(PhoneVerification.id))
        .limit(limit)
    ).all()
    out = []
    for row in rows:
        expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=now.tzinfo)
        expired = expires <= now or row.phone_enc is None or row.message_enc is None
        values: dict[str, object] = (
            {"state": FAILED, "error": "expired", "message_enc": None, "phone_enc": None}
            if expired
            else {"lease_until": now + lease}
        )
        claimed = session.execute(
            update(PhoneVerification)
            .where(col(PhoneVerification.id) == row.id, col(PhoneVerification.state) == QUEUED)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if expired or getattr(claimed, "rowcount", 0) != 1:
            continue
        assert row.phone_enc is not None and row.message_enc is not None
        requester = session.get(ChannelIdentity, row.requester_id)
        out.append(
            QueuedCode(
                id=row.id or 0,
                channel=row.channel,
                phone_hash=row.phone_hash,
                phone_enc=row.phone_enc,
                message_enc=row.message_enc,
                attempts=row.attempts,
                language=requester.language if requester is not None else None,
            )
        )
    return out


def code_result(
    session: Session,
    *,
    verification_id: int,
    provider_id: str | None,
    error: str | None,
    next_at: datetime | None,
) -> None:
    """Record a send: sent (the message is wiped), to retry at `next_at`, or failed for good."""
    values: dict[str, object] = {
        "lease_until": None,
        "attempts": PhoneVerification.attempts + 1,
        "error": error,
    }
    if error is None:
        values.update(state=SENT, provider_id=provider_id, message_enc=None, phone_enc=None)
    elif next_at is None:
        values.update(state=FAILED, message_enc=None, phone_enc=None)
    else:
        values["next_attempt_at"] = next_at
    session.execute(
        update(PhoneVerification)
        .where(col(PhoneVerification.id) == verification_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
