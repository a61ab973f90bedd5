"""Store functions of the public sign-up: keyed hashes only, the per-address counts, the one-time link."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlmodel import select

from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import ChannelIdentity, Participant, ParticipantStatus, WebSignup
from storage.participants import NewAddress, Registration, record_opt_out, register_participant
from storage.signups import (
    DONE,
    LinkInvalid,
    SignupLimits,
    SignupNotFound,
    client_hash,
    end_signup,
    new_link,
    number_identity,
    open_signup,
    recent_signups,
    start_signup,
    use_link,
)
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock

PHONE = "+31612345678"
HOME = NewAddress(
    postcode="7511 AB",
    house_number=12,
    addition=None,
    lat=52.2215,
    lon=6.8937,
    municipality_code="0153",
    municipality_name="Enschede",
    place="Enschede",
)
LIMITS = SignupLimits()


def signed_up(sessions: SessionFactory, vault: DataVault, now: datetime) -> tuple[str, int]:
    """A finished sign-up of PHONE with a Telegram link: the link's token and the participant's id."""
    with transaction(sessions) as session:
        signup, _ref = start_signup(
            session, vault=vault, client=client_hash(vault=vault, address="203.0.113.9"), data={}, now=now,
            limits=LIMITS,
        )  # fmt: skip
        identity = number_identity(
            session, vault=vault, channel=ChannelKind.SMS, phone=PHONE, now=now, language="nl"
        )
        registration = Registration(
            name=None, phone=PHONE, address=HOME, preferred_channel=ChannelKind.TELEGRAM,
            consent_version="2026-1", consent_at=now, language="nl",
        )  # fmt: skip
        participant, _ = register_participant(
            session, vault=vault, identity=identity, registration=registration, now=now
        )
        end_signup(session, signup=signup, state=DONE, participant_id=participant.id)
        token = new_link(session, vault=vault, signup=signup, now=now, limits=LIMITS)
        assert participant.id is not None
        return token, participant.id


def test_only_keyed_hashes_are_stored(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    token, _ = signed_up(sessions, vault, clock())
    with sessions() as session:
        [signup] = session.exec(select(WebSignup)).all()
    assert token not in (signup.link_hash or "")
    assert "203.0.113.9" not in signup.client_hash
    assert signup.data_enc is None


def test_the_link_binds_one_chat_once(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    token, participant_id = signed_up(sessions, vault, clock())
    with transaction(sessions) as session:
        participant, identity = use_link(session, vault=vault, token=token, chat_id="551234567", now=clock())
        assert (participant.id, identity.channel, identity.participant_id) == (
            participant_id,
            ChannelKind.TELEGRAM,
            participant_id,
        )
    with transaction(sessions) as session, pytest.raises(LinkInvalid):
        use_link(session, vault=vault, token=token, chat_id="999", now=clock())


@pytest.mark.parametrize("why", ["expired", "unknown", "participant_gone"])
def test_a_link_that_no_longer_works(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, why: str
) -> None:
    token, participant_id = signed_up(sessions, vault, clock())
    now = clock()
    if why == "expired":
        now = clock.advance(minutes=LIMITS.link_minutes)
    elif why == "unknown":
        token = token[:-1] + ("0" if token[-1] != "0" else "1")
    else:
        with transaction(sessions) as session:
            gone = session.get(Participant, participant_id)
            assert gone is not None
            gone.status = ParticipantStatus.UNSUBSCRIBED
            session.add(gone)
    with transaction(sessions) as session, pytest.raises(LinkInvalid):
        use_link(session, vault=vault, token=token, chat_id="551234567", now=now)
    with sessions() as session:
        chats = session.exec(select(ChannelIdentity).where(ChannelIdentity.channel == ChannelKind.TELEGRAM))
        assert list(chats) == []


def test_counts_per_address_and_expiry(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    here, there = (client_hash(vault=vault, address=a) for a in ("198.51.100.1", "198.51.100.2"))
    with transaction(sessions) as session:
        _, ref = start_signup(session, vault=vault, client=here, data={"a": 1}, now=clock(), limits=LIMITS)
        start_signup(session, vault=vault, client=here, data={}, now=clock(), limits=LIMITS)
        start_signup(session, vault=vault, client=there, data={}, now=clock(), limits=LIMITS)
    with sessions() as session:
        assert recent_signups(session, client=here, now=clock(), limits=LIMITS) == (2, 0)
        assert open_signup(session, vault=vault, ref=ref, now=clock()).client_hash == here
        later = clock.advance(minutes=LIMITS.window_minutes)
        assert recent_signups(session, client=here, now=later, limits=LIMITS) == (0, 0)
        with pytest.raises(SignupNotFound):
            open_signup(session, vault=vault, ref=ref, now=later)


def test_a_new_number_identity_is_unverified_and_keeps_an_opt_out(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    with transaction(sessions) as session:
        record_opt_out(session, phone_hash=vault.lookup_hash(PHONE), now=clock())
        identity = number_identity(
            session, vault=vault, channel=ChannelKind.SMS, phone=PHONE, now=clock(), language="en"
        )
        assert (identity.verified, identity.opted_out, identity.last_inbound_at) == (False, True, None)
        again = number_identity(
            session, vault=vault, channel=ChannelKind.SMS, phone=PHONE, now=clock(), language="en"
        )
        assert again.id == identity.id
