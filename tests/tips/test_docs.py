"""docs/tips.md shows real tip conversations: every transcript in it is replayed against the router."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.conversations import ConversationRouter
from storage.actions import close_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionOutcome
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.flows.test_docs import format_replies
from tests.tips.conftest import launch, message, person

DOC = Path(__file__).resolve().parents[2] / "docs" / "tips.md"
_BLOCK = re.compile(
    r"### (?P<title>.+?)\n\n<!-- transcript: (?P<spec>.+?) -->\n```text\n(?P<body>.*?)```", re.S
)
CLOSE = ">> sluit:"
HEADLINES = ("Vermist: Noah (8), blauwe jas", "Overval op juwelier, twee mannen op een zwarte scooter")


@dataclass(frozen=True)
class Transcript:
    """One documented conversation: who, registered or not, which actions run, what was said."""

    title: str
    channel: ChannelKind
    sender: str
    registered: bool
    alerts: int
    """Actions running whose alert this person got (codes from seeds 1, 2, ...)."""
    actions: int
    """Actions running whose alert this person did not get."""
    turns: tuple[tuple[str, tuple[str, ...]], ...]


def transcripts() -> list[Transcript]:
    """Every transcript block of the doc."""
    found = []
    for match in _BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        channel, sender, *flags = match["spec"].split()
        options = dict(f.split("=") for f in flags if "=" in f)
        turns: list[tuple[str, list[str]]] = []
        for line in match["body"].splitlines():
            if line.startswith(CLOSE):
                turns.append((line, []))
            elif line.startswith("> "):
                turns.append((line[2:], []))
            else:
                turns[-1][1].append(line)
        found.append(
            Transcript(
                title=match["title"],
                channel=ChannelKind(channel),
                sender=sender,
                registered="registered" in flags,
                alerts=int(options.get("alerts", 0)),
                actions=int(options.get("actions", 0)),
                turns=tuple((sent, tuple(answer)) for sent, answer in turns),
            )
        )
    return found


def test_the_doc_has_dutch_and_english_transcripts() -> None:
    titles = [t.title for t in transcripts()]
    assert len(titles) >= 5
    assert any("English" in title for title in titles)


def close_first(sessions: SessionFactory, now: datetime, outcome: ActionOutcome) -> None:
    """Close the first action launched, as the control room does."""
    with transaction(sessions) as session:
        action = session.exec(select(Action).order_by(col(Action.id))).first()
        assert action is not None
        close_action(session, action=action, outcome=outcome, closing_text="", now=now)


@pytest.mark.parametrize("transcript", transcripts(), ids=lambda t: t.title)
async def test_documented_tip_conversation_is_what_the_bot_says(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    transcript: Transcript,
) -> None:
    who = person(sessions, vault, clock(), transcript.channel, registered=transcript.registered,
                 sender=transcript.sender)  # fmt: skip
    for n in range(transcript.alerts + transcript.actions):
        recipients = (who,) if n < transcript.alerts else ()
        launch(sessions, clock(), *recipients, headline=HEADLINES[n % 2], code_seed=n + 1)
        clock.advance(minutes=1)
    for sent, expected in transcript.turns:
        if sent.startswith(CLOSE):
            # `>> sluit: found` is the control room closing the first action with that outcome.
            close_first(sessions, clock(), ActionOutcome(sent.removeprefix(CLOSE).strip()))
            continue
        payload = sent.removeprefix("/start ") if sent.startswith("/start ") else None
        replies = await router.handle(message(who, sent, clock, start_payload=payload))
        clock.advance(seconds=20)
        assert format_replies(replies) == list(expected), f"after {sent!r}"
