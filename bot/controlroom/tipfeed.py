"""How the control room reads and answers tips, without knowing how tips are stored (storage/tips.py).

The tips module provides a `TipFeed`; until it is wired, `NoTipFeed` keeps the action page working and
says that tips will show up there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fastapi import Response

from bot.channels.media import EXTENSIONS


class TipNotFound(LookupError):
    """No tip with that id (for this action)."""


class TipsUnavailable(RuntimeError):
    """Tip handling is not wired into this control room."""


@dataclass(frozen=True)
class ThreadLine:
    """One message of a tip's conversation: the tipster's (`in`) or an operator's question (`out`)."""

    direction: str
    text: str
    at: datetime
    state: str = "done"
    """A question: `queued`, `sent` or `failed` (its outbound row's state); the tipster's message: `done`."""


@dataclass(frozen=True)
class TipMediaView:
    """A photo or file of a tip: where the page fetches it (`position`), and whether it is there yet."""

    position: int
    state: str
    """`pending` (being fetched), `stored`, or `refused` (see `reason`)."""
    content_type: str | None = None
    image: bool = False
    """Shown in the page; other files are offered as a download."""
    reason: str | None = None


@dataclass(frozen=True)
class MediaFile:
    """A tip's file as served to an operator."""

    tip_id: int
    position: int
    content_type: str
    data: bytes
    image: bool


def media_response(file: MediaFile) -> Response:
    """The file from our own origin: its checked type, never cached, never sniffed, images inline only."""
    extension = EXTENSIONS.get(file.content_type, "bin")
    disposition = "inline" if file.image else "attachment"
    return Response(
        content=file.data,
        media_type=file.content_type,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'{disposition}; filename="tip-{file.tip_id}-{file.position}.{extension}"',
            # Nothing in a served file may run or load anything, whatever a browser makes of it.
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Referrer-Policy": "no-referrer",
        },
    )


@dataclass(frozen=True)
class TipView:
    """A tip as an operator sees it: structured fields, raw text, photos, a pseudonymous reporter."""

    id: int
    action_id: int
    channel: str
    received_at: datetime
    text: str
    reporter: str
    seen_at: str | None = None
    seen_text: str | None = None
    """The tipster's time phrase as written; shown next to `seen_at`, or alone when it gave no time."""
    location: str | None = None
    lat: float | None = None
    lon: float | None = None
    direction: str | None = None
    description: str | None = None
    vehicle_plate: str | None = None
    media: list[TipMediaView] = field(default_factory=list)
    verdict: str | None = None
    """`useful`, `not_useful` or None."""
    relay: str | None = None
    """The neighbourhood group the tip came through, by name."""
    updated_at: datetime | None = None
    """When the tip last changed (a later message, an answer); None for tips that never change."""
    has_phone: bool = False
    thread: list[ThreadLine] = field(default_factory=list)
    """Every message of the tip in order, the operators' questions included."""
    late: bool = False
    """Sent after the action ended: shown apart from the live tips, never as one of them."""

    def to_json(self) -> dict[str, Any]:
        """The tip for the page's script (the server-sent event's data)."""
        data = asdict(self)
        data["received_at"] = self.received_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat() if self.updated_at else None
        data["thread"] = [{**asdict(line), "at": line.at.isoformat()} for line in self.thread]
        return data


class TipFeed(Protocol):
    """What the control room needs from tip handling."""

    available: bool

    def tips(self, *, action_id: int, after: int = 0, limit: int = 200) -> list[TipView]:
        """The action's tips with an id above `after`, oldest first."""
        ...

    def changed(self, *, action_id: int, since: datetime, upto: int) -> list[TipView]:
        """The action's tips with an id up to `upto` that changed after `since`, oldest change first."""
        ...

    def mark(self, *, action_id: int, tip_id: int, useful: bool, actor: str) -> TipView:
        """Record an operator's verdict on a tip. Raises TipNotFound."""
        ...

    async def reply(self, *, action_id: int, tip_id: int, text: str, actor: str) -> None:
        """Send an operator's question to the tipster on their channel. Raises TipNotFound."""
        ...

    def phone(self, *, action_id: int, tip_id: int, actor: str) -> str:
        """The tipster's phone number (the control room audits the view). Raises TipNotFound."""
        ...

    def media(self, *, tip_id: int, position: int) -> MediaFile:
        """A tip's stored photo or file, decrypted. Raises TipNotFound (also while it is being fetched)."""
        ...


class NoTipFeed:
    """No tip handling wired: no tips, and every tip action refused."""

    available = False

    def tips(self, *, action_id: int, after: int = 0, limit: int = 200) -> list[TipView]:
        """No tips."""
        return []

    def changed(self, *, action_id: int, since: datetime, upto: int) -> list[TipView]:
        """No tips change."""
        return []

    def mark(self, *, action_id: int, tip_id: int, useful: bool, actor: str) -> TipView:
        """Refused."""
        raise TipsUnavailable()

    async def reply(self, *, action_id: int, tip_id: int, text: str, actor: str) -> None:
        """Refused."""
        raise TipsUnavailable()

    def phone(self, *, action_id: int, tip_id: int, actor: str) -> str:
        """Refused."""
        raise TipsUnavailable()

    def media(self, *, tip_id: int, position: int) -> MediaFile:
        """Refused."""
        raise TipsUnavailable()
