"""What a channel hands over of a file a person sent (a tip's photo), and which files we take at all.

Fetching is a channel's job, since only the channel holds the provider's credentials: a `MediaSource`
turns the reference a message carried (a Telegram file id, a Twilio media URL) into `FetchedMedia`.

The type of a file is decided by its first bytes, checked against what the provider declared: we serve
these files to operators from our own origin, so a file must be what it claims to be. The check is a
short table of the signatures of the few types we accept, written here rather than taken from a
library: the standard library's `imghdr` is gone from newer Pythons and `mimetypes` reads only names,
and a table of eleven rows is all that a list this short needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

MAX_MEDIA_BYTES = 10_000_000

# Shown in the page as they are; everything else is offered as a download.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DOWNLOAD_TYPES = frozenset(
    {"application/pdf", "audio/mpeg", "audio/ogg", "audio/wav", "audio/amr", "audio/mp4"}
)
ACCEPTED_TYPES = IMAGE_TYPES | DOWNLOAD_TYPES
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/amr": "amr",
    "audio/mp4": "m4a",
}
# Other spellings providers use for the same types.
ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/opus": "audio/ogg",
    "audio/x-m4a": "audio/mp4",
}
# Declarations that say nothing about the type (Telegram's file server, some gateways).
UNDECLARED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


class MediaRefused(Exception):
    """A file we will not keep, now or later; `reason` is a short code operators see translated."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MediaUnavailable(Exception):
    """The provider could not hand the file over now (network, 5xx, 429): worth trying again later."""


@dataclass(frozen=True)
class FetchedMedia:
    """A file's bytes and its checked content type."""

    data: bytes
    content_type: str


@runtime_checkable
class MediaSource(Protocol):
    """A channel that can fetch the files people send it."""

    async def fetch_media(self, ref: str, *, max_bytes: int) -> FetchedMedia:
        """The file behind `ref`; raise `MediaRefused` (for good) or `MediaUnavailable` (try later)."""
        ...


def normalised(content_type: str | None) -> str:
    """`Image/JPG; charset=x` → `image/jpeg`."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(bare, bare)


def sniffed(data: bytes) -> str | None:
    """The accepted type these bytes begin like, else None."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head[4:11] == b"ftypM4A":
        return "audio/mp4"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def checked(data: bytes, *, declared: str | None, max_bytes: int) -> FetchedMedia:
    """The bytes with their type, if they are small enough, of a type we take and what was declared."""
    if len(data) > max_bytes:
        raise MediaRefused("too_large")
    found = sniffed(data)
    if found is None:
        raise MediaRefused("type")
    claimed = normalised(declared)
    if claimed not in UNDECLARED and claimed != found:
        # A file that is not what the provider says it is: nothing we would show.
        raise MediaRefused("type")
    return FetchedMedia(data=data, content_type=found)


def is_image(content_type: str | None) -> bool:
    """Whether the page shows this type inline (else it is a download)."""
    return normalised(content_type) in IMAGE_TYPES
