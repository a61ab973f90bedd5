"""The control room's `TipFeed` on storage: real tips, verdicts, questions to tipsters, phone numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session

from bot.channels.media import is_image
from bot.controlroom.tipfeed import MediaFile, ThreadLine, TipMediaView, TipNotFound, TipView
from bot.texts import Catalogue
from bot.tips.questions import ask_tipster
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Tip
from storage.relays import relay_names
from storage.tip_media import MediaNotFound, MediaState, media_of, stored_media
from storage.tip_outbox import question_states
from storage.tips import (
    TipHasNoChannel,
    changed_tips,
    get_tip,
    list_tips,
    messages_of,
    set_verdict,
    tip_phone,
    utc,
)
from storage.tips import TipNotFound as StoredTipNotFound


def media_view(state: MediaState) -> TipMediaView:
    """A file of a tip as the page shows it (no bytes: the page fetches those from our own URL)."""
    return TipMediaView(
        position=state.position,
        state=state.state,
        content_type=state.content_type,
        image=is_image(state.content_type),
        reason=state.reason,
    )


def tip_view(
    tip: Tip,
    *,
    relay: str | None = None,
    thread: Sequence[ThreadLine] = (),
    media: Sequence[MediaState] = (),
) -> TipView:
    """A stored tip as the control room shows it (`relay`: the name of the group it came through)."""
    seen_at = utc(tip.seen_at)
    return TipView(
        id=tip.id or 0,
        action_id=tip.action_id,
        channel=tip.channel.value,
        received_at=utc(tip.received_at) or tip.received_at,
        text=tip.text,
        reporter=tip.reporter,
        seen_at=seen_at.isoformat() if seen_at else None,
        seen_text=tip.seen_text,
        location=tip.location_text,
        lat=tip.lat,
        lon=tip.lon,
        direction=tip.direction,
        description=tip.description,
        vehicle_plate=tip.vehicle_plate,
        media=[media_view(m) for m in media],
        verdict=tip.verdict,
        has_phone=tip.phone_enc is not None,
        relay=relay,
        updated_at=utc(tip.updated_at),
        thread=list(thread),
        late=tip.late,
    )


def _threads(session: Session, tips: Sequence[Tip]) -> defaultdict[int | None, list[ThreadLine]]:
    by_tip: defaultdict[int | None, list[ThreadLine]] = defaultdict(list)
    messages = messages_of(session, tip_ids=[t.id for t in tips if t.id is not None])
    # A question's state is its outbound row's: the dispatcher records how the send went there.
    states = question_states(session, outbound_ids=[m.outbound_id for m in messages if m.outbound_id])
    for m in messages:
        state = states.get(m.outbound_id or 0, m.state)
        by_tip[m.tip_id].append(ThreadLine(m.direction, m.text, utc(m.at) or m.at, state))
    return by_tip


class StorageTipFeed:
    """Tips for the control room, read from and written to storage."""

    available = True

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        vault: DataVault,
        clock: Callable[[], datetime],
        catalogue: Catalogue,
        on_queued: Callable[[], None] | None = None,
        answer_open_minutes: int = 60,
    ) -> None:
        self._sessions = sessions
        self._vault = vault
        self._clock = clock
        self._catalogue = catalogue
        self._on_queued = on_queued
        self._answer_open = timedelta(minutes=answer_open_minutes)

    def tips(self, *, action_id: int, after: int = 0, limit: int = 200) -> list[TipView]:
        """The action's tips with an id above `after`, oldest first."""
        with self._sessions() as session:
            found = list_tips(session, action_id=action_id, after=after, limit=limit)
            names = relay_names(session, relay_ids={t.relay_id for t, _ in found if t.relay_id is not None})
            threads = _threads(session, [t for t, _ in found])
            files = media_of(session, tip_ids=[t.id for t, _ in found if t.id is not None])
            return [
                tip_view(
                    t, relay=names.get(t.relay_id or 0), thread=threads[t.id], media=files.get(t.id or 0, [])
                )
                for t, _ in found
            ]

    def changed(self, *, action_id: int, since: datetime, upto: int) -> list[TipView]:
        """The action's tips with an id up to `upto` that changed after `since`, oldest change first."""
        with self._sessions() as session:
            found = changed_tips(session, action_id=action_id, since=since, upto=upto)
            names = relay_names(session, relay_ids={t.relay_id for t in found if t.relay_id is not None})
            threads = _threads(session, found)
            files = media_of(session, tip_ids=[t.id for t in found if t.id is not None])
            return [
                tip_view(
                    t, relay=names.get(t.relay_id or 0), thread=threads[t.id], media=files.get(t.id or 0, [])
                )
                for t in found
            ]

    def mark(self, *, action_id: int, tip_id: int, useful: bool, actor: str) -> TipView:
        """Record an operator's verdict on a tip. Raises TipNotFound."""
        with transaction(self._sessions) as session:
            tip = self._get(session, action_id, tip_id)
            names = relay_names(session, relay_ids={tip.relay_id} if tip.relay_id else set())
            marked = set_verdict(session, tip=tip, useful=useful)
            return tip_view(
                marked,
                relay=names.get(tip.relay_id or 0),
                thread=_threads(session, [marked])[tip.id],
                media=media_of(session, tip_ids=[tip_id]).get(tip_id, []),
            )

    async def reply(self, *, action_id: int, tip_id: int, text: str, actor: str) -> None:
        """Queue an operator's question to the tipster (sent by the dispatcher). Raises TipNotFound."""
        with transaction(self._sessions) as session:
            tip = self._get(session, action_id, tip_id)
            try:
                ask_tipster(
                    session,
                    tip=tip,
                    text=text,
                    actor=actor,
                    now=self._clock(),
                    answer_open=self._answer_open,
                    vault=self._vault,
                    catalogue=self._catalogue,
                    on_queued=self._on_queued,
                )
            except TipHasNoChannel as exc:
                raise TipNotFound(tip_id) from exc

    def phone(self, *, action_id: int, tip_id: int, actor: str) -> str:
        """The tipster's phone number (the control room checks the role and audits the view)."""
        with self._sessions() as session:
            tip = self._get(session, action_id, tip_id)
            try:
                return tip_phone(tip=tip, vault=self._vault)
            except StoredTipNotFound as exc:
                raise TipNotFound(tip_id) from exc

    def media(self, *, tip_id: int, position: int) -> MediaFile:
        """A tip's stored photo or file, decrypted. Raises TipNotFound (also while it is being fetched)."""
        with self._sessions() as session:
            try:
                stored = stored_media(session, tip_id=tip_id, position=position)
            except MediaNotFound as exc:
                raise TipNotFound(tip_id) from exc
        return MediaFile(
            tip_id=tip_id,
            position=position,
            content_type=stored.content_type,
            data=self._vault.decrypt_bytes(stored.data_enc),
            image=is_image(stored.content_type),
        )

    @staticmethod
    def _get(session: object, action_id: int, tip_id: int) -> Tip:
        try:
            return get_tip(session, tip_id=tip_id, action_id=action_id)  # type: ignore[arg-type]
        except StoredTipNotFound as exc:
            raise TipNotFound(tip_id) from exc
