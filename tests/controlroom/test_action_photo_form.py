"""The new-action form's photo: uploaded with the form, checked by content, stored without EXIF, shown in
the preview; refused with a message in the operator's language; removable while a draft."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlmodel import select

from storage.db import SessionFactory
from storage.models import Action, ActionPhoto
from tests.actions.photo_files import TEXT_FILE, has_metadata, jpeg_with_exif, noise_jpeg, png_with_text
from tests.controlroom.conftest import csrf_of, login

FIELDS = {
    "type": "missing_person",
    "headline": "Vermist: jongen (8) in rode jas",
    "description": "Tim, 1.30 m, blond, rode jas, blauwe fiets.",
    "instruction": "Bel 112 als u hem ziet.",
    "area_kind": "circle",
    "postcode": "7511",
    "radius_m": "2000",
    "expires_minutes": "120",
}


async def _post(
    client: httpx.AsyncClient, name: str, data: bytes, path: str = "/controlroom/actions", **extra: str
) -> httpx.Response:
    form = await client.get("/controlroom/actions/new")
    fields = {"csrf_token": csrf_of(form.text), **FIELDS, **extra}
    return await client.post(path, data=fields, files={"photo": (name, data, "image/jpeg")})


def _photos(sessions: SessionFactory) -> list[ActionPhoto]:
    with sessions() as session:
        return list(session.exec(select(ActionPhoto)).all())


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [("tim.jpg", jpeg_with_exif(), "image/jpeg"), ("renamed.jpg", png_with_text(), "image/png")],
    ids=["jpeg-with-exif", "png-named-jpg"],
)
async def test_the_form_stores_the_photo_without_exif_and_the_preview_shows_it(
    client: httpx.AsyncClient, sessions: SessionFactory, name: str, data: bytes, content_type: str
) -> None:
    await login(client, "olga")
    form = await client.get("/controlroom/actions/new")
    assert 'enctype="multipart/form-data"' in form.text and 'name="photo" type="file"' in form.text
    created = await _post(client, name, data)
    assert created.status_code == 303, created.text
    path = created.headers["location"]
    preview = await client.get(path)
    assert f'src="{path}/photo"' in preview.text
    code = re.search(r"BN-[A-Z0-9]{4}", preview.text)
    assert code and f"http://127.0.0.1:8080/a/{code.group(0)}" in preview.text, "the SMS links to the page"
    photo = await client.get(f"{path}/photo")
    assert photo.status_code == 200 and photo.headers["content-type"] == content_type
    assert not has_metadata(photo.content)
    [row] = _photos(sessions)
    assert row.content_type == content_type


@pytest.mark.parametrize(
    ("name", "data", "dutch", "english"),
    [
        ("notes.jpg", TEXT_FILE, "De foto moet een JPEG- of PNG-afbeelding zijn.", "must be a JPEG or PNG"),
        ("big.jpg", noise_jpeg(600), "De foto is te groot (hoogstens 0.2 MB).", "too large (at most 0.2 MB)"),
    ],
    ids=["text-named-jpg", "too-large"],
)
async def test_a_bad_photo_is_refused_with_the_form_kept_and_nothing_stored(
    client: httpx.AsyncClient,
    sessions: SessionFactory,
    runtime: object,
    name: str,
    data: bytes,
    dutch: str,
    english: str,
) -> None:
    runtime.settings.action_photo_max_bytes = 200_000  # type: ignore[attr-defined]
    await login(client, "olga")
    refused = await _post(client, name, data)
    assert refused.status_code == 422
    assert dutch in refused.text and FIELDS["headline"] in refused.text
    page = await client.get("/controlroom/actions/new")
    await client.post(
        "/controlroom/language",
        data={"lang": "en", "back": "/controlroom/actions", "csrf_token": csrf_of(page.text)},
    )
    assert english in (await _post(client, name, data)).text
    assert _photos(sessions) == []
    with sessions() as session:
        assert session.exec(select(Action)).all() == []


async def test_a_draft_s_photo_can_be_removed_in_the_edit_form(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    created = await _post(client, "tim.jpg", jpeg_with_exif())
    path = created.headers["location"]
    edit = await client.get(f"{path}/edit")
    assert f'src="{path}/photo"' in edit.text and 'name="remove_photo"' in edit.text
    fields = {"csrf_token": csrf_of(edit.text), **FIELDS, "remove_photo": "yes"}
    saved = await client.post(
        f"{path}/edit", data=fields, files={"photo": ("", b"", "application/octet-stream")}
    )
    assert saved.status_code == 303, saved.text
    assert _photos(sessions) == []
    assert (await client.get(f"{path}/photo")).status_code == 404
