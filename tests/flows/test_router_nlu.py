"""The NLU on the router's path: free text parsed once, inside the step when the parser is in-process."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.inbox import Inbox
from bot.texts import Catalogue
from nlu.keywords import KeywordParser
from nlu.types import ParseResult
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import ProcessedEvent
from tests.conftest import FixedClock
from tests.flows.conftest import SMS, incoming, rows, texts


class CountingParser(KeywordParser):
    """The keyword parser, counting how it is asked."""

    def __init__(self) -> None:
        self.in_step = 0
        self.awaited = 0

    async def parse(self, text: str) -> ParseResult:
        """Parse between attempts (as a remote parser is asked)."""
        self.awaited += 1
        return super().parse_sync(text)

    def parse_sync(self, text: str) -> ParseResult:
        """Parse inside the step."""
        self.in_step += 1
        return super().parse_sync(text)


class RemoteParser:
    """A parser with only the async method, as RasaParser: never called inside a transaction."""

    def __init__(self) -> None:
        self.awaited = 0
        self._inner = KeywordParser()

    async def parse(self, text: str) -> ParseResult:
        """Parse one message."""
        self.awaited += 1
        return self._inner.parse_sync(text)


class BrokenParser(KeywordParser):
    """An in-process parser that fails."""

    def parse_sync(self, text: str) -> ParseResult:
        """Always fails."""
        raise RuntimeError("model missing")


@pytest.fixture
def make_router(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: Settings,
    clock: FixedClock,
):  # type: ignore[no-untyped-def]
    def make(parser: object) -> ConversationRouter:
        return ConversationRouter(
            sessions=sessions,
            vault=vault,
            book=book,
            parser=parser,  # type: ignore[arg-type]
            catalogue=catalogue,
            settings=settings,
            clock=clock,
        )

    return make


FREE_TEXT = ["hallo", "wat is dit eigenlijk", "ik zag een man met een rode jas bij het station"]


@pytest.mark.parametrize("text", FREE_TEXT, ids=["greet", "chatter", "tip-without-action"])
async def test_free_text_is_parsed_once_in_the_step_and_answered_as_by_a_remote_parser(
    make_router, clock: FixedClock, text: str
) -> None:  # type: ignore[no-untyped-def]
    local, remote = CountingParser(), RemoteParser()
    here = await make_router(local).handle(incoming(SMS, text, clock))
    assert (local.in_step, local.awaited) == (1, 0)
    there = await make_router(remote).handle(incoming(SMS, text, clock))
    assert remote.awaited == 1
    assert texts(here) == texts(there)


@pytest.mark.parametrize("text", ["HULP", "START", "STOP"], ids=["help", "start", "stop"])
async def test_keywords_never_ask_the_parser(make_router, clock: FixedClock, text: str) -> None:  # type: ignore[no-untyped-def]
    parser = CountingParser()
    assert await make_router(parser).handle(incoming(SMS, text, clock))
    assert (parser.in_step, parser.awaited) == (0, 0)


async def test_a_failing_in_process_parser_means_not_understood(
    make_router, clock: FixedClock, catalogue: Catalogue
) -> None:  # type: ignore[no-untyped-def]
    replies = await make_router(BrokenParser()).handle(incoming(SMS, "hallo", clock))
    assert texts(replies) == texts(await make_router(RemoteParser()).handle(incoming(SMS, "zzzz qqq", clock)))


async def test_an_inbox_that_leaves_the_ids_to_the_router_handles_a_duplicate_once(
    make_router, sessions: SessionFactory, clock: FixedClock
) -> None:  # type: ignore[no-untyped-def]
    router = make_router(CountingParser())
    inbox = Inbox(handle=router.handle)
    message = incoming(SMS, "HULP", clock, provider_id="SM" + "1" * 32)
    assert await inbox.receive(message)
    assert await inbox.receive(message) == []
    assert [e.key for e in rows(sessions, ProcessedEvent)] == ["sms:SM" + "1" * 32]
