"""The retention job reduces an opted-out identity to its keyed hash, also when older code re-stored more."""

from __future__ import annotations

from sqlmodel import select

from scheduler.jobs import JobContext, purge_retention
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionType, ChannelIdentity, ConversationState, Tip
from storage.participants import touch_sender
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock

STOPPED = "+31624681357"
STAYS = "+31613572468"


def seed(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> tuple[int, int]:
    """Two SMS identities, one opted out yet holding its address again, a tip and a conversation each."""
    now = clock()
    ids = []
    with transaction(sessions) as session:
        action = Action(
            code="BN-2002", type=ActionType.ROBBERY, headline="Overval", created_at=now, expires_at=now
        )
        session.add(action)
        session.flush()
        for phone in (STOPPED, STAYS):
            identity = touch_sender(
                session, vault=vault, channel=ChannelKind.SMS, address=phone, now=now
            ).identity
            session.add(
                Tip(
                    action_id=action.id or 0,
                    identity_id=identity.id,
                    channel=ChannelKind.SMS,
                    received_at=now,
                    updated_at=now,
                    reporter="R-1",
                    sender_hash=f"sms:{identity.address_hash}",
                    phone_enc=vault.encrypt(phone),
                )  # fmt: skip
            )
            session.add(
                ConversationState(identity_id=identity.id or 0, flow="tip", step="more", updated_at=now)
            )
            ids.append(identity.id or 0)
        stopped = session.get(ChannelIdentity, ids[0])
        assert stopped is not None
        # As a message after STOP left it before the fix: opted out, with its address encrypted again.
        stopped.opted_out, stopped.opted_out_at = True, now
        session.add(stopped)
    return ids[0], ids[1]


def test_what_opens_to_an_opted_out_number_goes_at_once_the_rest_after_retention(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, job_context: JobContext
) -> None:
    stopped, stays = seed(sessions, vault, clock)

    first = purge_retention(job_context)
    assert (first.counts["purged.opted_out_address"], first.counts["purged.opted_out_tip_number"]) == (1, 1)
    with sessions() as session:
        identities = {i.id: i for i in session.exec(select(ChannelIdentity))}
        tips = {t.identity_id: t for t in session.exec(select(Tip))}
        assert identities[stopped].address_enc is None and tips[stopped].phone_enc is None
        assert identities[stays].address_enc is not None and tips[stays].phone_enc is not None
        assert session.get(ConversationState, stopped) is not None, "a conversation under way stays"

    clock.advance(days=job_context.settings.retention_days + 1)
    later = purge_retention(job_context)
    assert later.counts["purged.opted_out_last_seen"] == 1
    with sessions() as session:
        gone = session.get(ChannelIdentity, stopped)
        assert gone is not None
        assert (gone.opted_out, gone.address_enc, gone.last_inbound_at) == (True, None, None)
        assert gone.address_hash == vault.lookup_hash(STOPPED)
        assert session.get(ConversationState, stopped) is None
        kept = session.get(ChannelIdentity, stays)
        assert kept is not None and kept.address_enc is not None
    assert purge_retention(job_context).counts.get("purged.opted_out_last_seen", 0) == 0


def test_a_stale_conversation_of_an_opted_out_number_goes_with_the_retention(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, job_context: JobContext
) -> None:
    stopped, _ = seed(sessions, vault, clock)
    clock.advance(days=job_context.settings.retention_days - 1)
    purge_retention(job_context)
    with sessions() as session:
        assert session.get(ConversationState, stopped) is not None
    clock.advance(days=2)
    purge_retention(job_context)
    with sessions() as session:
        assert session.get(ConversationState, stopped) is None
        assert session.get(ChannelIdentity, stopped) is not None
    # 400 days on, the opt-out record is still there: the hash, nothing else.
    clock.advance(days=400)
    purge_retention(job_context)
    with sessions() as session:
        kept = session.get(ChannelIdentity, stopped)
        assert kept is not None and kept.opted_out and kept.address_enc is None
