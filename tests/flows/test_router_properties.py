"""Property test: whatever text arrives at whatever step, the router answers, in bounds, without failing."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.segments import count_segments
from bot.conversations import ConversationRouter
from bot.texts import Catalogue
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.flows.conftest import Person, incoming

# Where a random message lands: outside any flow, and at each registration step.
PREFIXES = [
    [],
    ["START"],
    ["START", "JA"],
    ["START", "JA", "-"],
    ["START", "JA", "-", "7511 AB 12"],
    ["START", "JA", "-", "7511 AB 12", "JA"],
    ["START", "JA", "-", "7511 AB 12", "JA", "JA"],
]
texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=50),
    st.sampled_from(
        [
            "STOP",
            "HULP",
            "ja",
            "nee",
            "ENGLISH",
            "annuleer",
            "<script>",
            "' OR 1=1 --",
            "\x00",
            "😀" * 40,
            "¹",
            "٣",
        ]
    ),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=3), st.integers(1000, 2000)),
)
numbers = itertools.count(1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(PREFIXES), text=texts)
async def test_any_text_at_any_step_gets_a_bounded_answer(
    router: ConversationRouter, catalogue: Catalogue, clock: FixedClock, prefix: list[str], text: str
) -> None:
    person = Person(ChannelKind.SMS, f"+3161{next(numbers):07d}")
    for sent in prefix:
        await router.handle(incoming(person, sent, clock))
    replies = await router.handle(incoming(person, text, clock))
    apology = {catalogue.render(lang, "router.error") for lang in ("nl", "en")}
    assert replies, repr(text)
    for reply in replies:
        assert reply.text not in apology, repr(text)
        assert reply.recipient == person.sender
        assert count_segments(reply.text).segments <= 3, repr(text)


REGISTERED = ["START", "JA", "-", "7511 AB 12", "JA", "JA", "SMS"]
ADDRESS_PREFIXES = [
    ["ADRES"],
    ["ADRES", "TOEVOEGEN"],
    ["ADRES", "TOEVOEGEN", "1012 AB 5"],
    ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA"],
    ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "weekend", "ADRES", "VERWIJDEREN"],
    ["ik wil me afmelden"],
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.sampled_from(ADDRESS_PREFIXES), text=texts)
async def test_any_text_in_the_participant_flows_gets_a_bounded_answer(
    router: ConversationRouter, catalogue: Catalogue, clock: FixedClock, prefix: list[str], text: str
) -> None:
    person = Person(ChannelKind.SMS, f"+3162{next(numbers):07d}")
    for sent in [*REGISTERED, *prefix]:
        await router.handle(incoming(person, sent, clock))
    replies = await router.handle(incoming(person, text, clock))
    apology = {catalogue.render(lang, "router.error") for lang in ("nl", "en")}
    assert replies, repr(text)
    for reply in replies:
        assert reply.text not in apology, repr(text)
        assert count_segments(reply.text).segments <= 3, repr(text)
