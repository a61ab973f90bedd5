"""Which tip files we take: the type by the first bytes against the declared one, the size limit, and
which media URLs a Twilio webhook may name (https on Twilio's hosts, our own account for credentials)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.channels.media import MediaRefused, checked, is_image, normalised
from bot.channels.twilio_media import TwilioMedia, accepted_media_url, own_resource, rewritten
from bot.channels.twilio_payloads import parse_message, parse_recording
from tests.fakes.twilio_api import FakeTwilioApi

MEDIA = Path(__file__).parent / "testdata" / "media"
JPEG = (MEDIA / "photo.jpg").read_bytes()
PNG = (MEDIA / "photo.png").read_bytes()
OURS = "AC" + "1" * 32
OTHER = "AC" + "2" * 32
API = "https://api.twilio.com/2010-04-01/Accounts"
NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        pytest.param(JPEG, "image/jpeg", "image/jpeg", id="jpeg"),
        pytest.param(JPEG, "image/jpg", "image/jpeg", id="jpeg-alias"),
        pytest.param(JPEG, "application/octet-stream", "image/jpeg", id="telegram-file-server"),
        pytest.param(JPEG, None, "image/jpeg", id="undeclared"),
        pytest.param(PNG, "image/png; charset=binary", "image/png", id="png-with-parameter"),
        pytest.param(b"%PDF-1.7\n...", "application/pdf", "application/pdf", id="pdf"),
        pytest.param(b"OggS\x00\x02" + b"\0" * 20, "audio/ogg", "audio/ogg", id="voice-note"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/x-wav", "audio/wav", id="twilio-recording"),
    ],
)
def test_accepted_files_get_the_type_their_bytes_show(
    data: bytes, declared: str | None, expected: str
) -> None:
    assert checked(data, declared=declared, max_bytes=10_000_000).content_type == expected


@pytest.mark.parametrize(
    ("data", "declared", "limit", "reason"),
    [
        pytest.param(JPEG, "image/jpeg", len(JPEG) - 1, "too_large", id="one-byte-over"),
        pytest.param(b"<svg onload='alert(1)'/>", "image/svg+xml", 10**6, "type", id="svg"),
        pytest.param(b"<html><script>alert(1)</script>", "image/jpeg", 10**6, "type", id="html-as-jpeg"),
        pytest.param(JPEG, "text/html", 10**6, "type", id="jpeg-declared-html"),
        pytest.param(PNG, "image/jpeg", 10**6, "type", id="png-declared-jpeg"),
        pytest.param(b"\x00\x00\x00\x18ftypmp42" + b"\0" * 8, "video/mp4", 10**6, "type", id="video"),
    ],
)  # fmt: skip
def test_other_files_are_refused(data: bytes, declared: str, limit: int, reason: str) -> None:
    with pytest.raises(MediaRefused) as refused:
        checked(data, declared=declared, max_bytes=limit)
    assert refused.value.reason == reason


def test_only_images_are_shown_inline() -> None:
    assert is_image("image/jpeg") and is_image("IMAGE/PNG")
    assert not is_image("application/pdf") and not is_image("audio/ogg") and not is_image(None)
    assert normalised(" Audio/MP3 ") == "audio/mpeg"


@pytest.mark.parametrize(
    ("url", "accepted", "ours"),
    [
        pytest.param(f"{API}/{OURS}/Messages/MM1/Media/ME1", True, True, id="our-media"),
        pytest.param(f"{API}/{OURS}/Recordings/RE1", True, True, id="our-recording"),
        pytest.param(f"{API}/{OTHER}/Messages/MM1/Media/ME1", True, False, id="another-account"),
        pytest.param(f"https://api.dublin.ie1.twilio.com/{API[23:]}/{OURS}/x", True, True, id="region"),
        pytest.param(f"http://api.twilio.com/2010-04-01/Accounts/{OURS}/Media/ME1", False, False, id="http"),
        pytest.param("https://evil.example/2010-04-01/Accounts/x", False, False, id="elsewhere"),
        pytest.param("https://api.twilio.com.evil.example/x", False, False, id="lookalike"),
        pytest.param("https://eviltwilio.com/x", False, False, id="suffix-without-dot"),
        pytest.param("https://mms.twiliocdn.com/x", False, False, id="cdn-is-no-webhook-url"),
        pytest.param("file:///etc/passwd", False, False, id="file"),
        pytest.param("http://127.0.0.1:8080/x", False, False, id="loopback"),
    ],
)  # fmt: skip
def test_which_media_urls_a_webhook_may_name(url: str, accepted: bool, ours: bool) -> None:
    assert accepted_media_url(url) is accepted
    assert own_resource(url, OURS) is ours


def test_a_stand_in_api_takes_only_twilio_https_urls() -> None:
    base = "http://127.0.0.1:9999"
    assert (
        rewritten(f"{API}/{OURS}/Media/ME1", base)
        == f"http://127.0.0.1:9999/2010-04-01/Accounts/{OURS}/Media/ME1"
    )
    assert rewritten("https://mms.twiliocdn.com/cdn/abc", base) == "http://127.0.0.1:9999/cdn/abc"
    assert rewritten("http://mms.twiliocdn.com/cdn/abc", base) == "http://mms.twiliocdn.com/cdn/abc"
    assert rewritten("https://evil.example/x", base) == "https://evil.example/x"
    assert rewritten(f"{API}/{OURS}/Media/ME1", None) == f"{API}/{OURS}/Media/ME1"


def test_webhook_media_that_is_not_https_on_twilio_never_reaches_a_message() -> None:
    form = {
        "From": "+31612345678", "To": "+3197010254321", "MessageSid": "MM" + "a" * 32, "Body": "foto",
        "NumMedia": "3", "MediaUrl0": f"{API}/{OURS}/Messages/MM1/Media/ME1",
        "MediaUrl1": "http://api.twilio.com/2010-04-01/x", "MediaUrl2": "https://evil.example/p.jpg",
    }  # fmt: skip
    assert parse_message(form, received_at=NOW).media == (form["MediaUrl0"],)
    recording = {"CallSid": "CA1", "From": "+31612345678", "RecordingUrl": "http://evil.example/r.wav"}
    assert parse_recording(recording, received_at=NOW).media == ()


async def test_our_credentials_never_go_to_another_accounts_media() -> None:
    with FakeTwilioApi(OURS, "token-0123456789") as fake:
        media = TwilioMedia(account_sid=OURS, auth_token="token-0123456789", api_base_url=fake.base_url)
        try:
            with pytest.raises(MediaRefused) as refused:
                await media.fetch(f"{API}/{OTHER}/Messages/MM{'1' * 32}/Media/ME{'1' * 32}", max_bytes=10**6)
            assert refused.value.reason == "url"
            assert fake.requests == []
            ours = fake.add_media(JPEG)
            assert (await media.fetch(ours, max_bytes=10**6)).data == JPEG
        finally:
            await media.aclose()
