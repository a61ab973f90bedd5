"""One-message answers: help, a greeting, the friendly fallback, and switching language."""

from __future__ import annotations

from bot.flows.engine import FlowContext
from bot.flows.follow import area_list
from bot.messages import OutgoingMessage
from storage.areas import is_area_only
from storage.vocabulary import ChannelKind

LANGUAGE_KEYWORDS = {
    "english": "en",
    "engels": "en",
    "/english": "en",
    "nederlands": "nl",
    "dutch": "nl",
    "/nederlands": "nl",
    "/dutch": "nl",
}


def show_help(ctx: FlowContext) -> list[OutgoingMessage]:
    """What the bot can do, with the keywords: for a participant, a follower of areas, or a newcomer.

    Following an area is for chats only, so a newcomer hears of it on Telegram and WhatsApp.
    """
    participant = ctx.participant
    if participant is None:
        chat = ctx.message.channel in (ChannelKind.TELEGRAM, ChannelKind.WHATSAPP)
        return [ctx.say("help.unregistered_chat" if chat else "help.unregistered")]
    if is_area_only(participant):
        return [ctx.say("help.follower", areas=area_list(ctx))]
    return [ctx.say("help.registered")]


def greet(ctx: FlowContext) -> list[OutgoingMessage]:
    """A hello back, pointing to the next useful thing."""
    key = "greet.registered" if ctx.participant is not None else "greet.unregistered"
    return [ctx.say(key)]


def not_understood(ctx: FlowContext) -> list[OutgoingMessage]:
    """The friendly fallback for anything we cannot place."""
    if not ctx.text and not (ctx.message.media or ctx.message.location or ctx.message.contact_phone):
        return [ctx.say("fallback.empty")]
    key = "fallback.registered" if ctx.participant is not None else "fallback.unregistered"
    return [ctx.say(key)]


def switch_language(ctx: FlowContext, lang: str) -> list[OutgoingMessage]:
    """Set the person's language (identity and participant) and confirm in that language."""
    ctx.identity.language = lang
    ctx.session.add(ctx.identity)
    if ctx.participant is not None:
        ctx.participant.language = lang
        ctx.session.add(ctx.participant)
    return [ctx.say("language.switched")]
