"""An action's photo as we keep and send it: JPEG or PNG, re-encoded, without EXIF or other metadata.

A photo an operator uploads may carry the camera's GPS position, the device and the time in its EXIF;
the alert goes to thousands of people, so nothing but the pixels leaves. The type is decided by the
first bytes (the same check tips' files pass, `bot.channels.media.checked`), never by the file's name,
then Pillow must decode the whole image; it is turned upright (EXIF orientation), shrunk to at most
`MAX_SIDE` pixels a side (what Telegram and WhatsApp show anyway) and encoded again in its own format.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.channels.media import MediaRefused, checked

PHOTO_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG"}
MAX_SIDE = 2048
# A decompression bomb is refused before its pixels are decoded (a small file, a huge canvas).
MAX_PIXELS = 50_000_000
JPEG_QUALITY = 85


class PhotoRefused(ValueError):
    """Bytes we do not take as an action's photo; `reason` is `too_large`, `type` or `broken`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CleanPhoto:
    """A photo re-encoded without metadata: its bytes, type and size in pixels."""

    data: bytes
    content_type: str
    width: int
    height: int


def clean_photo(data: bytes, *, max_bytes: int) -> CleanPhoto:
    """JPEG or PNG bytes, checked by content and re-encoded without metadata. Raises PhotoRefused."""
    try:
        # The name and declared type of an upload say nothing the bytes do not: only the content counts.
        found = checked(data, declared=None, max_bytes=max_bytes).content_type
    except MediaRefused as exc:
        raise PhotoRefused(exc.reason) from None
    if found not in PHOTO_TYPES:
        raise PhotoRefused("type")
    try:
        with warnings.catch_warnings():
            # Pillow only warns below twice its own pixel limit; our smaller limit is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[PHOTO_TYPES[found]]) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise PhotoRefused("too_large")
                image.load()
                upright = ImageOps.exif_transpose(image)
    except PhotoRefused:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise PhotoRefused("broken") from None
    return _encoded(upright, found)


def _encoded(image: Image.Image, content_type: str) -> CleanPhoto:
    if content_type == "image/jpeg":
        image = image if image.mode in ("RGB", "L") else image.convert("RGB")
    elif image.mode not in ("RGB", "RGBA", "L", "LA"):
        # Palette images keep their transparency in the metadata we drop: make it part of the pixels.
        image = image.convert("RGBA")
    if max(image.size) > MAX_SIDE:
        image = image.copy()
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    # A fresh image holds the pixels only: no EXIF, ICC profile, XMP, comments or PNG text chunks.
    bare = Image.new(image.mode, image.size)
    bare.paste(image)
    out = io.BytesIO()
    if content_type == "image/jpeg":
        bare.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        bare.save(out, format="PNG", optimize=True)
    return CleanPhoto(data=out.getvalue(), content_type=content_type, width=bare.width, height=bare.height)
