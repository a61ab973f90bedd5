"""Take the README's control-room pictures from the real app: `docs/img/controlroom-preview.png` and
`docs/img/controlroom-live-action.png`, a running action with tips written the way people write them.

    .venv/bin/python scripts/screenshots.py [--out docs/img]

The app runs as `serve` builds it (`build_runtime` + `create_app`) on a fresh SQLite file in a temporary
folder, on a free loopback port, with the simulator carrying every channel; Debian's Chromium
(/usr/bin/chromium) is driven by Playwright. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import uvicorn
from argon2 import PasswordHasher

from bot.app import create_app
from bot.config import load_settings
from bot.runtime import Runtime, build_runtime
from storage.crypto import new_data_key
from storage.db import transaction
from storage.models import Address, ChannelIdentity, OperatorRole, Participant, ParticipantStatus
from storage.operators import create_operator
from storage.participants import canonical_address
from storage.vocabulary import ChannelKind

CHROMIUM = "/usr/bin/chromium"
ENSCHEDE = (52.2215, 6.8937)
PASSWORD = "schermafdruk-2026"
# Where the tipsters were (by number) and what they wrote, in the order they wrote it.
TIPS = [
    (0, "sms", "zag net een man met rode jas bij de Hema in de Kalanderstraat richting station", None),
    (1, "whatsapp", "nu net 5 min geleden bij het bankje op de Oude Markt, hij zat daar alleen", None),
    (2, "telegram", "Volgens mij liep hij om kwart over 3 over de Hengelosestraat naar het Volkspark", None),
    (3, "whatsapp", "staat hier bij de bushalte Van Heekplein, grijze broek en rode jas", (52.2189, 6.8966)),
]
QUESTION = "Dank u. Welke kant liep hij op?"
ANSWER = "richting het station, langzaam, met een stok"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _address(channel: str, n: int) -> str:
    return str(700100 + n) if channel == "telegram" else f"+3161234{n:04d}"


def _seed(runtime: Runtime, now: datetime) -> None:
    """Forty participants around the centre of Enschede on the three chat channels, and an operator."""
    channels = itertools.cycle([ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM])
    with transaction(runtime.sessions) as session:
        for n in range(40):
            channel = next(channels) if n >= len(TIPS) else ChannelKind(TIPS[n][1])
            person = Participant(
                status=ParticipantStatus.ACTIVE,
                language="nl",
                preferred_channel=channel,
                created_at=now,
                confirmed_at=now,
            )
            session.add(person)
            session.flush()
            address = _address(channel.value, n)
            session.add(
                ChannelIdentity(
                    participant_id=person.id,
                    channel=channel,
                    address_hash=runtime.vault.lookup_hash(canonical_address(channel, address)),
                    address_enc=runtime.vault.encrypt(address),
                    language="nl",
                    last_inbound_at=now,
                    created_at=now,
                )
            )
            session.add(
                Address(
                    participant_id=person.id or 0,
                    slot=1,
                    postcode="7511 AB",
                    house_number=n + 1,
                    lat=ENSCHEDE[0] + ((n * 37) % 11 - 5) * 0.0012,
                    lon=ENSCHEDE[1] + ((n * 53) % 11 - 5) * 0.0018,
                    municipality_code="0153",
                    municipality_name="Enschede",
                    place="Enschede",
                )
            )
        create_operator(
            session,
            username="olga",
            password=PASSWORD,
            role=OperatorRole.OPERATOR,
            municipalities=(),
            now=now,
            hasher=PasswordHasher(),
        )


def _say(url: str, channel: str, sender: str, text: str, at: tuple[float, float] | None = None) -> None:
    body: dict[str, object] = {"channel": channel, "sender": sender, "text": text}
    if at is not None:
        body |= {"lat": at[0], "lon": at[1]}
    httpx.post(f"{url}/simulator/messages", json=body, timeout=10).raise_for_status()


def take(out: Path) -> list[Path]:
    """Serve the app, run an action in Chromium, save the two pictures; returns their paths."""
    from playwright.sync_api import expect, sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="burgernet-shots-"))
    port = _free_port()
    settings = load_settings(
        database_url=f"sqlite:///{folder / 'shots.db'}",
        data_key=new_data_key(),
        public_base_url=f"http://127.0.0.1:{port}",
        telegram_bot_token=None,
        twilio_account_sid=None,
        twilio_auth_token=None,
        simulator=True,
        controlroom_webhook_url=None,
        controlroom_telegram_chat_id=None,
        dispatch_rate_limits=False,
    )
    runtime = build_runtime(settings)
    _seed(runtime, datetime.now(UTC))
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    while not server.started:
        time.sleep(0.05)
    out.mkdir(parents=True, exist_ok=True)
    saved = [out / "controlroom-preview.png", out / "controlroom-live-action.png"]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="nl-NL")
            page.goto(f"{url}/controlroom/login")
            page.get_by_label("Gebruikersnaam").fill("olga")
            page.get_by_label("Wachtwoord").fill(PASSWORD)
            page.get_by_role("button", name="Inloggen").click()
            page.goto(f"{url}/controlroom/actions/new")
            page.get_by_label("Kop (kort: wat is er gebeurd)").fill(
                "Vermist: man (78), rode jas, loopt met stok"
            )
            page.get_by_label("Omschrijving (signalement, voertuig)").fill(
                "Henk, 1.75 m, grijs haar, rode jas, grijze broek. Is in de war en kan de weg niet vinden."
            )
            page.get_by_label("Wat moeten deelnemers doen?").fill("Ziet u hem? Bel 112 en blijf bij hem.")
            page.get_by_label("Zoek een plaats, straat of postcode").fill("Enschede")
            page.get_by_label("Zoek een plaats, straat of postcode").press("Enter")
            expect(page.locator("#lookup-result")).to_contain_text("Enschede")
            page.get_by_role("button", name="Bekijk ontvangers en kosten").click()
            expect(page.locator("#preview-total")).to_be_visible()
            page.screenshot(path=str(saved[0]), full_page=True)
            page.get_by_label("Ik heb de tekst en het gebied gecontroleerd", exact=False).check()
            page.get_by_role("button", name="Start de actie").click()
            expect(page.locator("#action-status")).to_have_text("actief")
            expect(page.locator('#progress [data-count="queued"]').first).to_have_text("0", timeout=15_000)
            for n, channel, text, at in TIPS:
                _say(url, channel, _address(channel, n), text, at)
                expect(page.locator(f"#tips > li >> nth={0}")).to_contain_text(text.split(",")[0][:30])
            first = page.locator("#tips > li").last
            first.get_by_label("Antwoord aan de melder").fill(QUESTION)
            first.get_by_role("button", name="Verstuur").click()
            expect(first.locator(".thread li.out")).to_have_count(1)
            _say(url, "sms", _address("sms", 0), ANSWER)
            expect(page.locator("#tips > li").last.locator(".thread li")).to_have_count(3, timeout=15_000)
            page.locator("#tips > li").last.get_by_role("button", name="Nuttig", exact=True).click()
            page.locator("#tips > li").nth(1).get_by_role("button", name="Niet nuttig").click()
            expect(page.locator("#tips .verdict:visible")).to_have_count(2)
            page.mouse.click(5, 5)
            page.screenshot(path=str(saved[1]), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return saved


def main() -> None:
    """Parse the output folder and take the pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    for path in take(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
