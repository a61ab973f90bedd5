"""Store functions for sign-ups on the public page: the sign-up itself, its limits, its Telegram link.

The page is not a chat, so there is no identity that asks for the code: the requester of the code is
the identity of the number itself on the channel the code goes by, made unverified when new (as a
typed number's identity is). The client's address takes the place of the chat for the per-sender
limit, kept only as a keyed hash. Nothing here commits: the caller's transaction does.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.crypto import DataVault
from storage.models import ChannelIdentity, Participant, WebSignup
from storage.participants import LIVE_STATUSES, find_identity, is_opted_out, link_identity, phone_hash
from storage.vocabulary import ChannelKind

CODE = "code"
DONE = "done"
FAILED = "failed"
LINK_PREFIX = "join_"


class SignupNotFound(Exception):
    """No open sign-up for this reference (unknown, expired, finished)."""


class LinkInvalid(Exception):
    """The Telegram link token is unknown, used or expired."""


@dataclass(frozen=True)
class SignupLimits:
    """How many sign-ups one client address may send, and how long one waits for its code."""

    window_minutes: int = 60
    per_address: int = 10
    """Forms one address may send per window (each one asks for a code)."""
    codes_per_address: int = 3
    """Codes one address may ask for per window: the verification's per-sender limit for a page."""
    valid_minutes: int = 30
    link_minutes: int = 60


def client_hash(*, vault: DataVault, address: str) -> str:
    """The keyed hash the limits count a client address by."""
    return vault.lookup_hash(f"signup-client:{address}")


def ref_hash(*, vault: DataVault, ref: str) -> str:
    """The keyed hash of a sign-up's browser reference."""
    return vault.lookup_hash(f"signup-ref:{ref}")


def link_hash(*, vault: DataVault, token: str) -> str:
    """The keyed hash of a Telegram link token."""
    return vault.lookup_hash(f"signup-link:{token}")


def recent_signups(session: Session, *, client: str, now: datetime, limits: SignupLimits) -> tuple[int, int]:
    """Sign-ups and codes asked for from one client address within the window."""
    since = now - timedelta(minutes=limits.window_minutes)
    where = (col(WebSignup.client_hash) == client, col(WebSignup.created_at) > since)
    count = func.count(col(WebSignup.id))
    forms = session.exec(select(count).where(*where)).one()
    codes = session.exec(select(count).where(*where, col(WebSignup.verification_id).is_not(None))).one()
    return forms, codes


def number_identity(
    session: Session, *, vault: DataVault, channel: ChannelKind, phone: str, now: datetime, language: str
) -> ChannelIdentity:
    """The number's identity on a phone channel; new ones are unverified (nobody proved the number yet)."""
    identity = find_identity(session, vault=vault, channel=channel, address=phone)
    if identity is not None:
        return identity
    key = phone_hash(vault=vault, phone=phone)
    opted_out = is_opted_out(session, phone_hash=key)
    identity = ChannelIdentity(
        channel=channel,
        address_hash=key,
        created_at=now,
        language=language,
        verified=False,
        opted_out=opted_out,
        opted_out_at=now if opted_out else None,
    )
    session.add(identity)
    session.flush()
    return identity


def start_signup(
    session: Session,
    *,
    vault: DataVault,
    client: str,
    data: dict[str, Any],
    now: datetime,
    limits: SignupLimits,
) -> tuple[WebSignup, str]:
    """Store a sign-up waiting for its code; returns it and the reference the browser keeps."""
    ref = secrets.token_urlsafe(24)
    signup = WebSignup(
        ref_hash=ref_hash(vault=vault, ref=ref),
        client_hash=client,
        created_at=now,
        expires_at=now + timedelta(minutes=limits.valid_minutes),
        data_enc=vault.encrypt(json.dumps(data)),
    )
    session.add(signup)
    session.flush()
    return signup, ref


def open_signup(session: Session, *, vault: DataVault, ref: str, now: datetime) -> WebSignup:
    """The sign-up waiting for its code under this reference. Raises SignupNotFound."""
    key = ref_hash(vault=vault, ref=ref)
    signup = session.exec(select(WebSignup).where(WebSignup.ref_hash == key)).first()
    if signup is None or signup.state != CODE or signup.data_enc is None:
        raise SignupNotFound(ref)
    expires = signup.expires_at if signup.expires_at.tzinfo else signup.expires_at.replace(tzinfo=now.tzinfo)
    if now >= expires:
        raise SignupNotFound(ref)
    return signup


def signup_data(*, vault: DataVault, signup: WebSignup) -> dict[str, Any]:
    """The form's answers a sign-up keeps until its code is typed."""
    if signup.data_enc is None:
        raise SignupNotFound(str(signup.id))
    data: dict[str, Any] = json.loads(vault.decrypt(signup.data_enc))
    return data


def end_signup(session: Session, *, signup: WebSignup, state: str, participant_id: int | None = None) -> None:
    """Close a sign-up (done or failed); the form's answers are wiped."""
    signup.state = state
    signup.data_enc = None
    signup.participant_id = participant_id
    session.add(signup)
    session.flush()


def new_link(
    session: Session, *, vault: DataVault, signup: WebSignup, now: datetime, limits: SignupLimits
) -> str:
    """A one-time Telegram deep-link payload for a finished sign-up; only its keyed hash is stored."""
    # Hex only: a payload must not hold anything that reads as an action code (`BN-...`).
    token = LINK_PREFIX + secrets.token_hex(16)
    signup.link_hash = link_hash(vault=vault, token=token)
    signup.link_expires_at = now + timedelta(minutes=limits.link_minutes)
    session.add(signup)
    session.flush()
    return token


def use_link(
    session: Session, *, vault: DataVault, token: str, chat_id: str, now: datetime
) -> tuple[Participant, ChannelIdentity]:
    """Bind a Telegram chat to the sign-up's participant, once, while the link lasts. Raises LinkInvalid."""
    signup = session.exec(
        select(WebSignup).where(WebSignup.link_hash == link_hash(vault=vault, token=token)).with_for_update()
    ).first()
    if signup is None or signup.link_used_at is not None or signup.link_expires_at is None:
        raise LinkInvalid(token)
    expires = signup.link_expires_at
    expires = expires if expires.tzinfo else expires.replace(tzinfo=now.tzinfo)
    participant = session.get(Participant, signup.participant_id) if signup.participant_id else None
    if now >= expires or participant is None or participant.status not in LIVE_STATUSES:
        raise LinkInvalid(token)
    signup.link_used_at = now
    session.add(signup)
    # The message with the link comes from the chat itself: like START there, it lifts an opt-out.
    identity = link_identity(
        session,
        vault=vault,
        participant=participant,
        channel=ChannelKind.TELEGRAM,
        address=chat_id,
        now=now,
        from_the_address=True,
    )
    return participant, identity
