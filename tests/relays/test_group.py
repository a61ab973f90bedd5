"""A Telegram group registers itself: `/buurtapp` in the group, a dialogue only its starter answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from sqlmodel import select

from bot.conversations import ConversationRouter
from bot.flows.engine import Finish, Flow, FlowContext, Step, Transition
from bot.flows.relay import RelayFlow, RelayGroupFlow
from bot.texts import Catalogue
from nlu.keywords import KeywordParser
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import ChannelIdentity, Relay, RelayPlatform
from storage.participants import find_identity
from storage.relays import relay_for_group
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.relays.conftest import ADMIN, GROUP_CHAT, Chat, group_message, texts_of

HINT = "\n(Beantwoord dit bericht.)"
REGISTER_GROUP = ["/buurtapp@BurgernetTestBot", "ja", "7511 7512", "45"]


def nl(catalogue: Catalogue, key: str, **params: object) -> str:
    return catalogue.render("nl", key, **params)


def active_relays(sessions: SessionFactory) -> list[Relay]:
    with sessions() as session:
        return list(session.exec(select(Relay).where(Relay.active == True)))  # noqa: E712


async def test_an_admin_registers_the_group_in_the_group(
    chat: Chat, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    turns = await chat.in_group(REGISTER_GROUP)

    assert [texts_of(t) for t in turns] == [
        [nl(catalogue, "relay.group_rules") + HINT],
        [nl(catalogue, "relay.ask_area") + HINT],
        [nl(catalogue, "relay.ask_members") + HINT],
        [nl(catalogue, "relay.group_done", name="Buurtpreventie Roombeek")],
    ]
    # Everything is said in the group, without a keyboard that would pop up for every member.
    assert {(r.recipient, r.buttons) for t in turns for r in t} == {(GROUP_CHAT, ())}
    [relay] = active_relays(sessions)
    assert (relay.group_name, relay.platform, relay.estimated_members) == (
        "Buurtpreventie Roombeek",
        RelayPlatform.TELEGRAM,
        45,
    )
    with sessions() as session:
        group = find_identity(session, vault=vault, channel=ChannelKind.TELEGRAM, address=GROUP_CHAT)
        admin = find_identity(session, vault=vault, channel=ChannelKind.TELEGRAM, address=ADMIN)
        assert group is not None and admin is not None
        assert (relay.group_identity_id, relay.coordinator_identity_id) == (group.id, admin.id)
        assert (
            relay_for_group(session, vault=vault, channel=ChannelKind.TELEGRAM, group_id=GROUP_CHAT).id
            == relay.id
        )


async def test_a_group_without_a_title_is_asked_its_name(chat: Chat, sessions: SessionFactory) -> None:
    await chat.in_group(["/buurtapp", "ja", "Buurtapp Lasonder", "7511", "30"], title=None)
    [relay] = active_relays(sessions)
    assert relay.group_name == "Buurtapp Lasonder"


async def test_only_the_starter_answers(chat: Chat, sessions: SessionFactory, catalogue: Catalogue) -> None:
    await chat.in_group(["/buurtapp", "ja"])
    # Another member's answer, and their attempt to take the dialogue over, get no reply at all.
    assert await chat.in_group(["7511", "/buurtapp"], user="888002") == [[], []]
    turns = await chat.in_group(["7511", "45"])
    assert texts_of(turns[0]) == [nl(catalogue, "relay.ask_members") + HINT]
    [relay] = active_relays(sessions)
    assert relay.estimated_members == 45


GROUP_SILENCE = {
    "chatter": ["goedemorgen allemaal"],
    "other-bots-command": ["/buurtapp@SomeOtherBot"],
    "answer-without-a-question": ["7511"],
    "help-in-the-group": ["/help"],
}


@pytest.mark.parametrize("messages", GROUP_SILENCE.values(), ids=GROUP_SILENCE.keys())
async def test_the_bot_keeps_quiet_in_the_group(chat: Chat, messages: list[str]) -> None:
    assert await chat.in_group(messages) == [[] for _ in messages]


async def test_the_starter_can_cancel(chat: Chat, sessions: SessionFactory, catalogue: Catalogue) -> None:
    turns = await chat.in_group(["/buurtapp", "ja", "/annuleer", "7511"])
    assert texts_of(turns[2]) == [nl(catalogue, "router.cancelled")]
    assert turns[2][0].recipient == GROUP_CHAT
    assert turns[3] == []
    assert active_relays(sessions) == []


async def test_registering_again_replaces_the_groups_relay(chat: Chat, sessions: SessionFactory) -> None:
    await chat.in_group(REGISTER_GROUP)
    await chat.in_group(["/buurtapp", "ja", "7511", "60"])
    [relay] = active_relays(sessions)
    assert relay.estimated_members == 60


async def test_another_member_cannot_take_over_a_registered_group(
    chat: Chat, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await chat.in_group(REGISTER_GROUP)
    turns = await chat.in_group(["/buurtapp", "ja"], user="888002")
    assert [texts_of(t) for t in turns] == [[nl(catalogue, "relay.group_taken")], []]
    [relay] = active_relays(sessions)
    assert relay.estimated_members == 45


async def test_the_group_chat_is_its_own_identity(
    chat: Chat, sessions: SessionFactory, vault: DataVault
) -> None:
    await chat.in_group(REGISTER_GROUP)
    with sessions() as session:
        group = find_identity(session, vault=vault, channel=ChannelKind.TELEGRAM, address=GROUP_CHAT)
        assert group is not None and group.participant_id is None
        assert vault.decrypt(group.address_enc or "") == GROUP_CHAT
        assert len(session.exec(select(ChannelIdentity)).all()) == 2  # the group and its admin


class RecordingTipFlow(Flow):
    """Stands in for the tip flow (issue 5): claims group messages that answer or mention the bot."""

    name = "tip_probe"
    seen: ClassVar[list[tuple[str | None, str | None, str, str]]] = []

    def steps(self) -> Mapping[str, Step]:
        return {}

    def begin(self, ctx: FlowContext) -> Transition:
        message = ctx.message
        self.seen.append((message.group_id, message.reply_to_provider_id, message.text, message.sender))
        return Finish()

    def intercepts(self, ctx: FlowContext) -> bool:
        message = ctx.message
        return message.group_id is not None and (
            message.reply_to_provider_id is not None or "@burgernettestbot" in message.text.casefold()
        )


async def test_a_reply_in_the_group_reaches_the_interceptors_with_what_a_tip_needs(
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    catalogue: Catalogue,
    settings: object,
    clock: FixedClock,
) -> None:
    router = ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=KeywordParser(),
        catalogue=catalogue,
        settings=settings,  # type: ignore[arg-type]
        clock=clock,
        flows=[RecordingTipFlow(), RelayFlow(), RelayGroupFlow()],
    )
    RecordingTipFlow.seen.clear()
    await router.handle(group_message("Ik zag hem bij de Jumbo", clock, user="888002", reply_to=4242))
    await router.handle(group_message("@BurgernetTestBot jongen met blauwe jas bij het station", clock))
    assert RecordingTipFlow.seen == [
        (GROUP_CHAT, "4242", "Ik zag hem bij de Jumbo", "888002"),
        (GROUP_CHAT, None, "@BurgernetTestBot jongen met blauwe jas bij het station", ADMIN),
    ]


async def test_after_the_bot_was_removed_another_member_may_register_the_group(
    chat: Chat, sessions: SessionFactory, vault: DataVault
) -> None:
    await chat.in_group(REGISTER_GROUP)
    with transaction(sessions) as session:
        # What the dispatcher records when Telegram answers "bot was kicked from the group chat".
        group = find_identity(session, vault=vault, channel=ChannelKind.TELEGRAM, address=GROUP_CHAT)
        assert group is not None
        group.opted_out, group.address_enc = True, None
        session.add(group)
    await chat.in_group(["/buurtapp", "ja", "7511", "60"], user="888002")
    [relay] = active_relays(sessions)
    assert relay.estimated_members == 60
    with sessions() as session:
        group = find_identity(session, vault=vault, channel=ChannelKind.TELEGRAM, address=GROUP_CHAT)
        assert group is not None and not group.opted_out
        # Opted out, the group's chat id was forgotten; registered again, it is stored to post to.
        assert group.address_enc is not None and vault.decrypt(group.address_enc) == GROUP_CHAT
