"""An opt-out keeps the keyed hash alone, and look-ups survive the rotation of either key.

Signed Twilio webhooks into the app as `serve` wires it, replies and alerts at the fake Twilio, the raw
database read column by column. Two people in Enschede: Jan says STOP, Piet stays. Whatever Jan does
afterwards, no value in the database opens to his number; past the retention the job leaves his
identity as its hash and the opt-out; an action over Enschede reaches Piet and never Jan. Then the data
key and the lookup key are rotated (the old data key removed): Piet is still found by his messages and
alerted, Jan still opted out.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import MetaData, create_engine, select
from twilio.request_validator import RequestValidator

from bot.config import Settings, load_settings
from bot.runtime import Runtime, job_context, make_vault
from scheduler.jobs import purge_retention, rehash_lookups
from storage.crypto import DataKeyError, DataVault, new_data_key
from storage.db import make_engine, session_factory
from storage.keys import rotate_data_key
from storage.models import ChannelIdentity, ConversationState, OptOut, Participant, ParticipantStatus
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled, served_runtime
from tests.fakes.twilio_api import FakeTwilioApi

ACCOUNT_SID = "AC" + "8" * 32
AUTH_TOKEN = "e5a3" * 8
API_TOKEN = "erasure-test-token-0123456789abcdef"
PUBLIC = "https://burgernet.example.nl"
OUR_NUMBER = "+3197010254321"
JAN = "+31612340001"
PIET = "+31612340002"
REGISTRATION = ["START", "JA", "{name}", "7511 AB 12", "JA", "JA", "SMS"]
ENSCHEDE = {"circle": {"lat": 52.2215, "lon": 6.8937, "radius_m": 5000}}
_sids = itertools.count(1)


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


def settings_with(database_url: str, fake: FakeTwilioApi, *, data_key: str, lookup_key: str) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=data_key,
        lookup_key=lookup_key,
        api_token=API_TOKEN,
        public_base_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        privacy_statement_version="2026-1",
    )


@asynccontextmanager
async def running(settings: Settings, clock: FixedClock) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    async with served_runtime(settings, clock) as both:
        yield both


async def sms(http: httpx.AsyncClient, sender: str, text: str) -> None:
    """An inbound SMS as Twilio posts it, signed."""
    sid = f"SM{next(_sids):032x}"
    form = {
        "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": ACCOUNT_SID, "Body": text,
        "From": sender, "To": OUR_NUMBER, "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    response = await http.post(
        path,
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 200, response.text


async def register(http: httpx.AsyncClient, phone: str, name: str) -> None:
    for text in REGISTRATION:
        await sms(http, phone, text.format(name=name))


async def alert_everyone_in_enschede(
    runtime: Runtime, http: httpx.AsyncClient, fake: FakeTwilioApi, *, expect: str
) -> list[dict[str, str]]:
    """Launch an action over Enschede; the messages it sends, once `expect` has got the alert."""
    await outbox_settled(runtime.sessions)  # the replies so far are out before we count
    before = len(fake.messages())
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    action = await http.post(
        "/api/v1/actions",
        headers=auth,
        json={
            "type": "missing_person",
            "headline": "Vermist: jongen (8), blauwe jas",
            "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
            "instruction": "Ziet u hem? Bel 112.",
            "area": ENSCHEDE,
            "expires_at": (runtime.clock() + timedelta(hours=2)).isoformat(),
        },
    )
    assert action.status_code in (200, 201), action.text
    launched = await http.post(f"/api/v1/actions/{action.json()['id']}/launch", headers=auth)
    assert launched.status_code == 200, launched.text
    for _ in range(400):
        sent = fake.messages()[before:]
        if any(m["To"] == expect for m in sent):
            # The fan-out is nearest-first and both live at the same address: give Jan's turn a moment.
            await asyncio.sleep(0.3)
            return fake.messages()[before:]
        await asyncio.sleep(0.025)
    raise AssertionError(f"no alert reached {expect}")


def raw_values(database_url: str) -> Iterator[tuple[str, str, Any]]:
    """Every column value of every row, as the database holds it (no ORM, no decryption)."""
    engine = create_engine(database_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as connection:
            for table in meta.sorted_tables:
                for row in connection.execute(select(table)).mappings():
                    for column, value in row.items():
                        yield table.name, column, value
    finally:
        engine.dispose()


def opens_to(database_url: str, vault: DataVault, phone: str) -> list[str]:
    """Where the raw database still holds the number: in clear, or encrypted with any key we have."""
    national = "0" + phone.removeprefix("+31")
    found = []
    for table, column, value in raw_values(database_url):
        text = str(value)
        if phone in text or phone.lstrip("+") in text or national in text:
            found.append(f"{table}.{column} in clear")
        elif isinstance(value, str) and value.startswith("gAAAA"):
            try:
                if phone in vault.decrypt(value):
                    found.append(f"{table}.{column} encrypted")
            except DataKeyError:
                pass
    return found


def identity_of(runtime: Runtime, phone: str) -> list[ChannelIdentity]:
    """Every identity whose hash any listed lookup key gives for this number."""
    hashes = runtime.vault.lookup_hashes(phone)
    with runtime.sessions() as session:
        return list(session.scalars(select(ChannelIdentity).where(ChannelIdentity.address_hash.in_(hashes))))  # type: ignore[attr-defined]


def participant_of(runtime: Runtime, identity: ChannelIdentity) -> Participant | None:
    with runtime.sessions() as session:
        return session.get(Participant, identity.participant_id) if identity.participant_id else None


async def test_stop_leaves_the_hash_alone_and_the_purge_keeps_it_so(
    database_url: str, fake: FakeTwilioApi, clock: FixedClock
) -> None:
    settings = settings_with(database_url, fake, data_key=new_data_key(), lookup_key=new_data_key())
    async with running(settings, clock) as (runtime, http):
        vault = runtime.vault
        await register(http, JAN, "Jan")
        await register(http, PIET, "Piet")
        assert opens_to(database_url, vault, JAN), "registered: the number is stored encrypted"

        await sms(http, JAN, "STOP")
        # The attack: a later message used to store the number again on the opted-out identity.
        await sms(http, JAN, "Hallo, is er nog iets?")
        await sms(http, JAN, "Ik zag een man met een rode jas bij het station")
        await outbox_settled(runtime.sessions)
        assert opens_to(database_url, vault, JAN) == []
        [jan] = identity_of(runtime, JAN)
        assert jan.opted_out and jan.address_enc is None and jan.participant_id is None

        clock.advance(days=settings.retention_days + 1)
        result = purge_retention(job_context(runtime))
        assert result.counts.get("purged.opted_out_last_seen") == 1
        await outbox_settled(runtime.sessions)
        assert opens_to(database_url, vault, JAN) == []
        [jan] = identity_of(runtime, JAN)
        assert (jan.opted_out, jan.address_enc, jan.participant_id, jan.last_inbound_at) == (
            True,
            None,
            None,
            None,
        )
        assert jan.address_hash == vault.lookup_hash(JAN)
        with runtime.sessions() as session:
            assert session.get(OptOut, vault.lookup_hash(JAN)) is not None
            assert session.get(ConversationState, jan.id) is None
            people = list(session.scalars(select(Participant)))
        assert sorted(p.status for p in people) == [ParticipantStatus.ACTIVE, ParticipantStatus.UNSUBSCRIBED]
        assert [p.phone_hash for p in people if p.status is ParticipantStatus.UNSUBSCRIBED] == [None]

        # The opt-out is honoured: the action reaches Piet, nothing goes to Jan.
        sent = await alert_everyone_in_enschede(runtime, http, fake, expect=PIET)
        assert [m["To"] for m in sent] == [PIET]

        # Jan writes once more after the purge: the same opted-out identity, still nothing decryptable.
        await sms(http, JAN, "Hallo?")
        assert [(i.id, i.opted_out, i.address_enc) for i in identity_of(runtime, JAN)] == [
            (jan.id, True, None)
        ]
        await outbox_settled(runtime.sessions)
        assert opens_to(database_url, vault, JAN) == []


async def test_lookups_and_opt_outs_survive_rotating_both_keys(
    database_url: str, fake: FakeTwilioApi, clock: FixedClock
) -> None:
    old_data, new_data = new_data_key(), new_data_key()
    old_lookup, new_lookup = new_data_key(), new_data_key()
    first = settings_with(database_url, fake, data_key=old_data, lookup_key=old_lookup)
    async with running(first, clock) as (runtime, http):
        await register(http, PIET, "Piet")
        await register(http, JAN, "Jan")
        await sms(http, JAN, "STOP")
        [piet_before] = identity_of(runtime, PIET)

    # DATA_KEY: the new key first, re-encrypt, then the old key removed.
    rotating = settings_with(database_url, fake, data_key=f"{new_data},{old_data}", lookup_key=old_lookup)
    engine = make_engine(database_url)
    try:
        report = rotate_data_key(session_factory(engine), vault=make_vault(rotating))
    finally:
        engine.dispose()
    # Piet's name, number and identity address; nothing of Jan is left to rotate.
    assert report.values == 3
    # LOOKUP_KEY: the new key first with the old one listed, and the re-hash job.
    both = settings_with(database_url, fake, data_key=new_data, lookup_key=f"{new_lookup},{old_lookup}")
    clock.advance(hours=1)
    async with running(both, clock) as (runtime, http):
        done = rehash_lookups(job_context(runtime))
        assert done.counts["rehashed.identities"] == 1 and done.counts["rehashed.participants"] == 1
        assert rehash_lookups(job_context(runtime)).counts.get("rehashed.identities", 0) == 0, "idempotent"
        [piet] = identity_of(runtime, PIET)
        assert piet.id == piet_before.id and piet.address_hash == DataVault(new_data, new_lookup).lookup_hash(
            PIET
        )
        await sms(http, JAN, "Hallo?")
        [jan] = identity_of(runtime, JAN)
        assert jan.opted_out and jan.address_enc is None
        sent = await alert_everyone_in_enschede(runtime, http, fake, expect=PIET)
        assert [m["To"] for m in sent] == [PIET]

    # Only the new keys: Piet's message finds his registration (no new identity), he is alerted.
    only_new = settings_with(database_url, fake, data_key=new_data, lookup_key=new_lookup)
    async with running(only_new, clock) as (runtime, http):
        await sms(http, PIET, "MIJN GEGEVENS")
        [piet] = identity_of(runtime, PIET)
        assert piet.id == piet_before.id
        person = participant_of(runtime, piet)
        assert person is not None and person.status is ParticipantStatus.ACTIVE
        assert runtime.vault.decrypt(person.phone_enc or "") == PIET
        sent = await alert_everyone_in_enschede(runtime, http, fake, expect=PIET)
        assert [m["To"] for m in sent] == [PIET]
        with pytest.raises(DataKeyError):
            DataVault(old_data).decrypt(piet.address_enc or "")
