"""Photos made for tests: a JPEG with EXIF (GPS, camera), a PNG with text chunks, and what is not a photo."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin

GPS_IFD = 0x8825
MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112


def jpeg_with_exif(size: tuple[int, int] = (320, 200), *, orientation: int = 1) -> bytes:
    """A JPEG whose EXIF names a camera and a GPS position, as a phone's photo does."""
    image = Image.new("RGB", size, (200, 40, 40))
    for x in range(size[0] // 2):
        image.putpixel((x, 5), (0, 0, 255))
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[ORIENTATION] = "PhoneMaker", "Phone 12", orientation
    exif[GPS_IFD] = {1: "N", 2: (52.0, 13.0, 17.0), 3: "E", 4: (6.0, 53.0, 37.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    return out.getvalue()


def png_with_text(size: tuple[int, int] = (240, 180)) -> bytes:
    """A PNG with a text chunk and EXIF (PNG's eXIf chunk)."""
    image = Image.new("RGBA", size, (20, 120, 60, 255))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Jan Jansen, Hengelo")
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker"
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, exif=exif)
    return out.getvalue()


def noise_jpeg(side: int) -> bytes:
    """A JPEG of random pixels (large for its size in pixels)."""
    import random

    rng = random.Random(side)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


TEXT_FILE = b"Dit is geen foto, alleen tekst.\n" * 20
BROKEN_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200  # the signature of a JPEG, then nothing of one


def has_metadata(data: bytes) -> bool:
    """Whether the image carries EXIF, or text chunks, or an ICC profile."""
    with Image.open(io.BytesIO(data)) as image:
        extra = ("exif", "Author", "icc_profile", "XML:com.adobe.xmp")
        return bool(image.getexif()) or any(k in image.info for k in extra)
