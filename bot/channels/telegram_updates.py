"""Telegram updates as `IncomingMessage`s: what a person wrote, shared or pressed; no PTB type beyond here."""

from __future__ import annotations

from datetime import datetime

from telegram import CallbackQuery, Chat, Message, Update

from bot.messages import IncomingMessage
from storage.vocabulary import ChannelKind, GeoPoint

GROUP_CHATS = frozenset({Chat.GROUP, Chat.SUPERGROUP})
# What we ask Telegram for; edited messages are left out on purpose (see `incoming_from_update`).
ALLOWED_UPDATES = ("message", "callback_query")


def provider_id(update: Update) -> str:
    """Our dedupe key for an update: Telegram numbers updates once per bot."""
    return f"update:{update.update_id}"


def incoming_from_update(update: Update, *, received_at: datetime) -> IncomingMessage | None:
    """The message a person sent in this update, or None for updates we do not act on.

    Edited messages are ignored: an edit arrives when the conversation has moved on, and taking
    it as a new answer would answer a question that is no longer being asked.
    """
    if update.callback_query is not None:
        return _from_callback(update, update.callback_query, received_at)
    if update.message is not None:
        return _from_message(update, update.message, received_at)
    return None


def _from_message(update: Update, message: Message, received_at: datetime) -> IncomingMessage | None:
    user = message.from_user
    if user is None or user.is_bot:
        return None
    text = message.text or message.caption or ""
    contact_phone = None
    if message.contact is not None and message.contact.user_id == user.id:
        # Only the sender's own card proves the number; a forwarded contact is someone else's.
        contact_phone = message.contact.phone_number
    location = None
    if message.location is not None:
        location = GeoPoint(lat=message.location.latitude, lon=message.location.longitude)
    media: tuple[str, ...] = ()
    if message.photo:
        largest = max(message.photo, key=lambda size: (size.width * size.height, size.file_size or 0))
        media = (largest.file_id,)
    elif message.document is not None:
        media = (message.document.file_id,)
    reply_to = message.reply_to_message
    return IncomingMessage(
        channel=ChannelKind.TELEGRAM,
        sender=_sender(message.chat, user.id),
        text=text,
        received_at=received_at,
        provider_id=provider_id(update),
        location=location,
        media=media,
        contact_phone=contact_phone,
        reply_to_provider_id=str(reply_to.message_id) if reply_to is not None else None,
        start_payload=start_payload(text),
        group_id=str(message.chat.id) if message.chat.type in GROUP_CHATS else None,
        raw=update.to_dict(),
    )


def _from_callback(update: Update, query: CallbackQuery, received_at: datetime) -> IncomingMessage:
    origin = query.message
    chat = origin.chat if origin is not None else None
    in_group = chat is not None and chat.type in GROUP_CHATS
    return IncomingMessage(
        channel=ChannelKind.TELEGRAM,
        sender=str(query.from_user.id) if chat is None else _sender(chat, query.from_user.id),
        text=query.data or "",
        received_at=received_at,
        provider_id=provider_id(update),
        reply_to_provider_id=str(origin.message_id) if origin is not None else None,
        group_id=str(chat.id) if chat is not None and in_group else None,
        raw=update.to_dict(),
    )


def _sender(chat: Chat, user_id: int) -> str:
    # In a private chat the chat id is the person's id; in a group the person, not the group,
    # is who registers, stops or tips, so replies go to them privately.
    return str(user_id) if chat.type in GROUP_CHATS else str(chat.id)


def start_payload(text: str) -> str | None:
    """The deep-link payload of `/start BN-4821` (also `/start@Bot BN-4821`), else None."""
    command, _, rest = text.strip().partition(" ")
    if command.split("@", 1)[0].lower() != "/start":
        return None
    return rest.strip() or None
