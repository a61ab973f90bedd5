"""docs/flows.md shows real conversations: every transcript in it is replayed against the router."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.messages import OutgoingMessage
from storage.vocabulary import ChannelKind
from tests.flows.conftest import Converse, Message, Person, TypedCode, register_steps

DOC = Path(__file__).resolve().parents[2] / "docs" / "flows.md"
_BLOCK = re.compile(
    r"### (?P<title>.+?)\n\n<!-- transcript: (?P<spec>.+?) -->\n```text\n(?P<body>.*?)```", re.S
)


@dataclass(frozen=True)
class Transcript:
    """One documented conversation: who, whether registered first, what was sent and answered."""

    title: str
    person: Person
    registered: bool
    turns: tuple[tuple[str, tuple[str, ...]], ...]


def format_replies(replies: Sequence[OutgoingMessage]) -> list[str]:
    """Replies as the doc writes them: `< text  [buttons]`, further lines indented."""
    lines = []
    for reply in replies:
        marks = ("  [" + " | ".join(reply.buttons) + "]") if reply.buttons else ""
        marks += "  [contact]" if reply.request_contact else ""
        marks += "  [location]" if reply.request_location else ""
        text = reply.text.split("\n")
        text[-1] += marks
        lines.append("< " + text[0])
        lines.extend("  " + line for line in text[1:])
    return lines


def transcripts() -> list[Transcript]:
    """Every transcript block of the doc."""
    found = []
    for match in _BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        channel, sender, *flags = match["spec"].split()
        turns: list[tuple[str, list[str]]] = []
        for line in match["body"].splitlines():
            if line.startswith("> "):
                turns.append((line[2:], []))
            else:
                turns[-1][1].append(line)
        found.append(
            Transcript(
                title=match["title"],
                person=Person(ChannelKind(channel), sender),
                registered="registered" in flags,
                turns=tuple((sent, tuple(answer)) for sent, answer in turns),
            )
        )
    return found


def test_the_doc_has_transcripts_of_every_flow() -> None:
    titles = [t.title for t in transcripts()]
    assert len(titles) >= 8
    assert any("English" in title for title in titles)


@pytest.mark.parametrize("transcript", transcripts(), ids=lambda t: t.title)
async def test_documented_conversation_is_what_the_bot_says(
    converse: Converse, transcript: Transcript
) -> None:
    if transcript.registered:
        channel = "WhatsApp" if transcript.person.channel is ChannelKind.WHATSAPP else "SMS"
        await converse(transcript.person, register_steps(transcript.person, channel=channel))
    # `> <code>` in the doc types the code that was just sent to the typed number.
    sent: list[Message] = [TypedCode() if s == "<code>" else s for s, _ in transcript.turns]
    replies = await converse(transcript.person, sent)
    for (said, expected), got in zip(transcript.turns, replies, strict=True):
        assert format_replies(got) == list(expected), said
