"""An operator's question to a tipster: the thread's message and the outbound row that sends it, together.

Both are written in the caller's transaction (the control room's or the API's), so a question is never
shown without being sent, nor sent without being shown. The message is built here, with the tipster's
address and language; the dispatcher sends it, and the tipster's STOP wipes it while it waits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.messages import OutgoingMessage
from bot.outbox import payload_of
from bot.texts import Catalogue
from storage.crypto import DataKeyError, DataVault
from storage.db import after_commit
from storage.models import OutboundKind, Tip, TipMessage
from storage.outbound import queue_message
from storage.tip_outbox import queue_question
from storage.tips import TipHasNoChannel


def ask_tipster(
    session: Session,
    *,
    tip: Tip,
    text: str,
    actor: str,
    now: datetime,
    answer_open: timedelta,
    vault: DataVault,
    catalogue: Catalogue,
    on_queued: Callable[[], None] | None = None,
) -> TipMessage:
    """Write the question and its outbound row; raises TipHasNoChannel when the tipster cannot be reached."""
    question = queue_question(session, tip=tip, text=text, actor=actor, now=now, answer_open=answer_open)
    identity = question.identity
    try:
        recipient = vault.decrypt(identity.address_enc or "")
    except DataKeyError as exc:
        raise TipHasNoChannel(tip.id) from exc
    body = catalogue.render(
        identity.language or tip.language, "tip.operator_question", code=question.action_code, question=text
    )
    message = OutgoingMessage(channel=identity.channel, recipient=recipient, text=body)
    # The row itself (not `queue_messages`): the question keeps its id, to show the row's sending state.
    row = queue_message(
        session,
        vault=vault,
        channel=message.channel,
        recipient=message.recipient,
        payload=payload_of(message),
        kind=OutboundKind.TIP_QUESTION,
        identity_id=identity.id,
        now=now,
    )
    session.flush()
    question.message.outbound_id = row.id
    if on_queued is not None:
        after_commit(session, on_queued)
    return question.message
