"""Replies cost money on SMS and WhatsApp: a sender who floods us gets a bounded number of them."""

from __future__ import annotations

import pytest

from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.texts import Catalogue
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.flows.conftest import SMS, TELEGRAM, WHATSAPP, Person, incoming


async def flood(
    router: ConversationRouter, clock: FixedClock, who: Person, count: int, text: str
) -> list[list[str]]:
    turns = []
    for _ in range(count):
        turns.append([r.text for r in await router.handle(incoming(who, text, clock))])
        clock.advance(seconds=5)
    return turns


@pytest.mark.parametrize("who", [SMS, WHATSAPP], ids=["sms", "whatsapp"])
async def test_sixty_messages_get_a_bounded_number_of_replies(
    router: ConversationRouter, clock: FixedClock, catalogue: Catalogue, settings: Settings, who: Person
) -> None:
    limit = settings.reply_limit_per_window
    turns = await flood(router, clock, who, 60, "hallo?")  # five minutes: one window
    answered = [t for t in turns if t]
    assert len(answered) == limit + 1
    assert turns[limit] == [catalogue.render("nl", "router.reply_limit")]
    assert turns[limit + 1 :] == [[]] * (60 - limit - 1)
    # STOP is always confirmed, even past the budget.
    [stop] = await flood(router, clock, who, 1, "STOP")
    assert stop and stop[0] != catalogue.render("nl", "router.reply_limit")


async def test_the_budget_starts_again_in_the_next_window(
    router: ConversationRouter, clock: FixedClock, settings: Settings
) -> None:
    limit = settings.reply_limit_per_window
    await flood(router, clock, SMS, limit + 5, "hallo?")
    clock.advance(minutes=settings.reply_window_minutes)
    [again] = await flood(router, clock, SMS, 1, "hallo?")
    assert again


async def test_telegram_replies_cost_nothing_and_are_not_budgeted(
    router: ConversationRouter, clock: FixedClock, settings: Settings
) -> None:
    turns = await flood(router, clock, TELEGRAM, settings.reply_limit_per_window + 5, "hallo?")
    assert all(turns)
    assert TELEGRAM.channel is ChannelKind.TELEGRAM
