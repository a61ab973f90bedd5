"""What an alert will say on each channel, for the new-action form's counter: the real texts, counted.

The form's counter asks here while the operator types, so it counts exactly what each channel will send
(the SMS with its instruction and squeezed to fit, the chat text whole) instead of guessing in the page.
The texts travel in a POST body: an alert names the missing person, and the server logs every URL.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from bot.api.actions import MAX_DESCRIPTION, MAX_HEADLINE, MAX_INSTRUCTION
from bot.channels.segments import count_segments
from bot.controlroom.auth import ActionPoster
from bot.controlroom.deps import room
from bot.texts import LANGUAGES
from storage.models import Action, ActionType, DeliveryKind
from storage.vocabulary import ChannelKind

router = APIRouter()
CHANNELS = (ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM, ChannelKind.VOICE)
PLACEHOLDER_CODE = "BN-XXXX"  # as long as every real code


@router.post("/texts/alert")
async def alert_texts(
    request: Request,
    visitor: ActionPoster,
    type: Annotated[str, Form(max_length=32)] = ActionType.OTHER.value,
    headline: Annotated[str, Form(max_length=MAX_HEADLINE)] = "",
    description: Annotated[str, Form(max_length=MAX_DESCRIPTION)] = "",
    instruction: Annotated[str, Form(max_length=MAX_INSTRUCTION)] = "",
) -> JSONResponse:
    """The alert's text per channel and language, with its length, SMS parts and voice minutes."""
    cr = room(request)
    now = cr.clock()
    kind = ActionType(type) if type in {t.value for t in ActionType} else ActionType.OTHER
    probe = Action(
        code=PLACEHOLDER_CODE,
        type=kind,
        headline=headline,
        description=description,
        instruction=instruction,
        area={},
        created_at=now,
        expires_at=now,
    )
    texts: dict[str, dict[str, dict[str, Any]]] = {}
    for lang in LANGUAGES:
        texts[lang] = {}
        for channel in CHANNELS:
            text = cr.texts.text(probe, kind=DeliveryKind.ALERT, channel=channel, lang=lang)
            entry: dict[str, Any] = {"text": text, "chars": len(text)}
            if channel is ChannelKind.SMS:
                count = count_segments(text)
                entry |= {"segments": count.segments, "encoding": count.encoding.value}
            if channel is ChannelKind.VOICE:
                entry["minutes"] = cr.texts.voice_minutes(text)
            texts[lang][channel.value] = entry
    sms = texts[visitor.language][ChannelKind.SMS.value]
    counter = cr.catalogue.render(
        visitor.language,
        "controlroom.form.counter",
        chars=sms["chars"],
        segments=max(texts[lang][ChannelKind.SMS.value]["segments"] for lang in LANGUAGES),
        whatsapp=texts[visitor.language][ChannelKind.WHATSAPP.value]["chars"],
        telegram=texts[visitor.language][ChannelKind.TELEGRAM.value]["chars"],
    )
    return JSONResponse(
        {"texts": texts, "counter": counter, "problems": [p.message for p in cr.texts.problems(probe)]},
        headers={"Cache-Control": "no-store"},
    )
