"""The texts of an action per channel and language, from the catalogue: alert, closing, tip result.

Chat channels (Telegram, WhatsApp) get the full text; SMS is squeezed into at most two segments by
shortening the description (or closing text), then the headline; voice gets a text to speak. The code,
the operator's instruction and 112 are never cut: an instruction such as "benader hem niet" is what
keeps a citizen safe. Typographic characters the control room pastes in (curly quotes, dashes) are
replaced so an SMS stays GSM-7 (160 characters a part, not 70).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from bot.channels.segments import count_segments
from bot.config import Settings
from bot.texts import Catalogue
from storage.models import Action, ActionOutcome, ActionUpdate, DeliveryKind, RelayPlatform
from storage.targeting import Recipient
from storage.vocabulary import ChannelKind

MAX_SMS_SEGMENTS = 2
CHAT_LIMITS = {ChannelKind.TELEGRAM: 4096, ChannelKind.WHATSAPP: 1600}
VOICE_CHARS_PER_MINUTE = 800  # Dutch TTS speaks about 13-14 characters a second
ELLIPSIS = "..."
_GSM_FRIENDLY = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "}
)
_SPACES = re.compile(r"[ \t]+")
# Numbers to dial, said digit by digit: read as a number, 112 is "honderdtwaalf" and 0800-7000 a sum.
_DIAL_NUMBERS = re.compile(r"(?<![\d-])(?:112|0[89]00[- ]?\d{4})(?![\d-])")
_SENTENCE_END = frozenset(".!?…")
_CLOSERS = "\"')]»”’"
# An operator's closing text that already thanks the participants: our own thanks would be the second.
_THANKS = re.compile(r"\b(?:dank\w*|bedankt|thank\w*|thx)\b", re.IGNORECASE)
# The free texts the operator writes, and (for SMS) the order in which they are shortened to fit.
_FREE_TEXTS = ("headline", "description", "instruction", "closing_text", "update_text")
_SHORTENED = ("description", "closing_text", "update_text", "headline")
UPDATE_KINDS = frozenset({DeliveryKind.UPDATE, DeliveryKind.RELAY_UPDATE})
_BLANK_LINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class TextProblem:
    """A text of an action that does not fit a channel: which field, and why."""

    field: str
    message: str


def thanks_already(text: str) -> bool:
    """Whether an operator's closing text thanks the participants already (ours would be the second)."""
    return bool(_THANKS.search(text))


def gsm_friendly(text: str) -> str:
    """Replace typographic characters that would force an SMS into UCS-2."""
    return text.translate(_GSM_FRIENDLY)


def _tidy(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def spoken_numbers(text: str) -> str:
    """Numbers to dial written digit by digit for a voice to say: `bel 112` → `bel 1 1 2`."""
    return _DIAL_NUMBERS.sub(lambda m: " ".join(ch for ch in m.group() if ch.isdigit()), text)


def as_sentence(text: str) -> str:
    """The text ending as a sentence: a full stop added when it has no final punctuation."""
    text = text.strip()
    if not text or text.rstrip(_CLOSERS)[-1:] in _SENTENCE_END:
        return text
    return text + "."


def _shorten(text: str, keep: int) -> str:
    """The first `keep` characters of a text cut at a word, with an ellipsis; empty when nothing is left."""
    if keep <= len(ELLIPSIS):
        return ""
    cut = text[: keep - len(ELLIPSIS)].rsplit(" ", 1)[0].rstrip(" ,.;:")
    return cut + ELLIPSIS if cut else ""


@dataclass(frozen=True)
class RelayRef:
    """The relay a relayed alert goes to: its id rides in the link, its platform picks the link."""

    relay_id: int
    platform: RelayPlatform


def whatsapp_digits(sender: str | None) -> str | None:
    """`whatsapp:+31 97 0102` → `31970102`: our WhatsApp number as wa.me wants it, or None."""
    digits = "".join(ch for ch in (sender or "") if ch.isdigit())
    return digits or None


class AlertTexts:
    """Builds every text an action sends, in the recipient's language and for their channel.

    `whatsapp_number` (digits, as in wa.me links) and `telegram_bot` (the bot's username) are the bases
    of the tip links in relayed alerts and on the public page; None leaves that link out. With
    `page_base_url` (PUBLIC_BASE_URL) the SMS alert of an action with a photo links to its page.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        max_sms_segments: int = MAX_SMS_SEGMENTS,
        whatsapp_number: str | None = None,
        telegram_bot: str | None = None,
        page_base_url: str | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._max_sms_segments = max_sms_segments
        self._whatsapp_number = whatsapp_digits(whatsapp_number)
        self._telegram_bot = (telegram_bot or "").lstrip("@") or None
        self._page_base_url = (page_base_url or "").rstrip("/") or None

    @classmethod
    def from_settings(cls, catalogue: Catalogue, settings: Settings) -> AlertTexts:
        """The texts with the tip links of our own WhatsApp number and Telegram bot."""
        return cls(
            catalogue,
            whatsapp_number=settings.twilio.whatsapp_from,
            telegram_bot=settings.telegram.bot_username,
            page_base_url=settings.public_base_url,
        )

    def page_url(self, code: str) -> str | None:
        """The action's public page (`/a/<code>`), or None without a public base URL."""
        return f"{self._page_base_url}/a/{code}" if self._page_base_url else None

    def photo_url(self, code: str) -> str | None:
        """Where the action's photo is served while it runs: a URL a provider can fetch (Twilio's media)."""
        page = self.page_url(code)
        return f"{page}/photo" if page else None

    def direct_tip_links(self, code: str) -> dict[RelayPlatform, str]:
        """The links that open a chat with the bot carrying the action's code (the public page's)."""
        links: dict[RelayPlatform, str] = {}
        if self._whatsapp_number:
            text = quote(f"TIP {code}")
            links[RelayPlatform.WHATSAPP] = f"https://wa.me/{self._whatsapp_number}?text={text}"
        if self._telegram_bot:
            links[RelayPlatform.TELEGRAM] = f"https://t.me/{self._telegram_bot}?start={code}"
        return links

    def tip_links(self, code: str, relay: RelayRef) -> dict[RelayPlatform, str]:
        """The links that open a chat with the bot carrying the action's code and the relay, per platform."""
        links: dict[RelayPlatform, str] = {}
        if self._whatsapp_number:
            text = quote(f"TIP {code} R{relay.relay_id}")
            links[RelayPlatform.WHATSAPP] = f"https://wa.me/{self._whatsapp_number}?text={text}"
        if self._telegram_bot:
            links[RelayPlatform.TELEGRAM] = (
                f"https://t.me/{self._telegram_bot}?start={code}_R{relay.relay_id}"
            )
        return links

    def _chosen_links(self, code: str, relay: RelayRef | None) -> list[str]:
        """The tip links a relay's text carries: the group's own app's, else every one we have."""
        if relay is None:
            return []
        links = self.tip_links(code, relay)
        return [links[relay.platform]] if relay.platform in links else list(links.values())

    def _link_line(self, code: str, relay: RelayRef | None, lang: str) -> str:
        """The sentence with the tip link(s) a relayed alert ends with; empty without a link base."""
        chosen = self._chosen_links(code, relay)
        if relay is not None and not chosen:
            # Without a link the group's members cannot reach us by a reply, so they need the code.
            return self._catalogue.render(lang, "action.relay_link.none", code=code)
        if not chosen:
            return ""
        if len(chosen) == 1:
            return self._catalogue.render(lang, "action.relay_link.one", url=chosen[0])
        whatsapp, telegram = chosen
        return self._catalogue.render(lang, "action.relay_link.both", whatsapp=whatsapp, telegram=telegram)

    @staticmethod
    def style(channel: ChannelKind) -> str:
        """Which catalogue variant a channel uses: chat, sms or voice."""
        if channel is ChannelKind.SMS:
            return "sms"
        if channel is ChannelKind.VOICE:
            return "voice"
        return "chat"

    def _params(
        self,
        action: Action,
        kind: DeliveryKind,
        lang: str,
        relay: RelayRef | None = None,
        update: ActionUpdate | None = None,
        update_photo: bool = False,
    ) -> dict[str, str]:
        outcome = action.outcome or ActionOutcome.NO_RESULT
        closing_text = (action.closing_text or "").strip()
        closes = kind in (DeliveryKind.CLOSING, DeliveryKind.RELAY_CLOSING)
        thanks = closes and not _THANKS.search(closing_text)
        # The photo is not sent by SMS: the alert (or the update that brought a new photo) links to the
        # page that shows it, while the action runs.
        with_photo = (action.has_photo and kind is DeliveryKind.ALERT) or (
            update_photo and kind is DeliveryKind.UPDATE
        )
        page = self.page_url(action.code) if with_photo else None
        return {
            "link": self._link_line(action.code, relay, lang),
            "page": self._catalogue.render(lang, "action.page_link", url=page) if page else "",
            "code": action.code,
            "type": self._catalogue.render(lang, f"action.type.{action.type.value}"),
            "headline": action.headline.strip(),
            "description": action.description.strip(),
            # An update without an instruction of its own repeats the action's: it is what keeps people safe.
            "instruction": ((update.instruction if update else "") or action.instruction).strip(),
            "update_text": update.text.strip() if update else "",
            "outcome": self._catalogue.render(lang, f"action.outcome.{outcome.value}"),
            "closing_text": closing_text,
            "thanks": self._catalogue.render(lang, f"action.thanks.{kind.value}") if thanks else "",
            # Every message of an exercise says so first, so no one mistakes it for the real thing.
            "prefix": self._catalogue.render(lang, "action.exercise_prefix") if action.exercise else "",
        }

    def _render(self, kind: DeliveryKind, style: str, lang: str, params: dict[str, str]) -> str:
        body = self._catalogue.render(lang, f"action.{kind.value}.{style}", **params)
        prefix = params.get("prefix", "")
        return _tidy(f"{prefix} {body}" if prefix else body)

    def text(
        self,
        action: Action,
        *,
        kind: DeliveryKind,
        channel: ChannelKind,
        lang: str,
        relay: RelayRef | None = None,
        update: ActionUpdate | None = None,
        update_photo: bool = False,
    ) -> str:
        """The text of one message of an action on a channel (for a relay: with its tip link; for an
        update: with the update's text, and by SMS the page's link when it brought a photo)."""
        if kind in UPDATE_KINDS and update is None:
            raise ValueError("an update's text needs the update")
        params = self._params(action, kind, lang, relay, update, update_photo)
        style = self.style(channel)
        # The operator's texts become sentences, so the next one never runs on ("zwarte helmen Tip?");
        # in a chat the headline stands on a line of its own, as a title.
        for field in _FREE_TEXTS:
            if style != "chat" or field != "headline":
                params[field] = as_sentence(params[field])
        if style == "voice":
            params = {k: spoken_numbers(v) if k in _FREE_TEXTS else v for k, v in params.items()}
        if style != "sms":
            return self._render(kind, style, lang, params)
        params = {k: gsm_friendly(v) for k, v in params.items()}
        # Shorten the free texts, longest-lived first, until the SMS fits its segments; the code, the
        # instruction and 112 stay whole even when that means a part more.
        for field in _SHORTENED:
            text = self._render(kind, style, lang, params)
            if self.sms_segments(text) <= self._max_sms_segments:
                return text
            params[field] = self._fit(kind, lang, params, field)
        return self._render(kind, style, lang, params)

    def _fit(self, kind: DeliveryKind, lang: str, params: dict[str, str], field: str) -> str:
        """The longest word-cut prefix of one field with which the SMS fits (empty if none does)."""
        original = params[field]
        low, high, best = 0, len(original), ""
        while low <= high:
            mid = (low + high) // 2
            candidate = _shorten(original, mid) if mid < len(original) else original
            trial = self._render(kind, "sms", lang, {**params, field: candidate})
            if self.sms_segments(trial) <= self._max_sms_segments:
                best, low = candidate, mid + 1
            else:
                high = mid - 1
        return best

    @staticmethod
    def sms_segments(text: str) -> int:
        """How many SMS parts a text needs."""
        return count_segments(text).segments

    @staticmethod
    def voice_minutes(text: str) -> int:
        """Billed minutes of a call that speaks the text (rounded up, at least one)."""
        return max(1, math.ceil(len(text) / VOICE_CHARS_PER_MINUTE))

    def template_variables(
        self,
        action: Action,
        *,
        kind: DeliveryKind,
        lang: str,
        relay: RelayRef | None = None,
        update: ActionUpdate | None = None,
    ) -> dict[str, str]:
        """The variables of a WhatsApp template: 1 code, 2 type, 3 headline (an update's text), 4
        instruction or outcome; for a relay's own template also 5, its tip link."""
        params = self._params(action, kind, lang, update=update)
        alert = kind in (DeliveryKind.ALERT, DeliveryKind.RELAY_ALERT, *UPDATE_KINDS)
        fourth = params["instruction"] if alert else params["outcome"]
        third = params["update_text"] if update is not None else params["headline"]
        variables = {"1": params["code"], "2": params["type"], "3": third, "4": fourth}
        if relay is not None:
            variables["5"] = next(iter(self._chosen_links(action.code, relay)), "")
        return variables

    def problems(self, action: Action, *, languages: tuple[str, ...] = ("nl", "en")) -> list[TextProblem]:
        """The fields of an action whose text does not fit a channel, with a message for each."""
        found: list[TextProblem] = []
        for lang in languages:
            for channel, limit in CHAT_LIMITS.items():
                length = len(self.text(action, kind=DeliveryKind.ALERT, channel=channel, lang=lang))
                if length > limit:
                    found.append(
                        TextProblem(
                            "description",
                            f"the {channel.value} alert would be {length} characters; the limit is {limit}",
                        )
                    )
            bare = action.model_copy(update={"description": ""})
            sms = self.text(bare, kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang=lang)
            if self.sms_segments(sms) > self._max_sms_segments:
                # The instruction is never cut, so the operator shortens it (or the headline) now.
                found.append(
                    TextProblem(
                        "instruction",
                        f"the instruction does not fit in an SMS of {self._max_sms_segments} parts; "
                        "shorten it",
                    )
                )
            elif action.headline.strip() and as_sentence(gsm_friendly(action.headline)) not in sms:
                found.append(
                    TextProblem(
                        "headline",
                        f"the headline and the instruction do not fit together in an SMS of "
                        f"{self._max_sms_segments} parts; shorten one of them",
                    )
                )
        unique = {(p.field, p.message): p for p in found}
        return list(unique.values())

    def update_problems(
        self,
        action: Action,
        update: ActionUpdate,
        *,
        languages: tuple[str, ...] = ("nl", "en"),
        with_photo: bool = False,
    ) -> list[TextProblem]:
        """The fields of an update that do not fit: its SMS must carry the whole text and instruction
        (and with a photo the page's link)."""
        found: list[TextProblem] = []
        for lang in languages:
            sms = self.text(
                action,
                kind=DeliveryKind.UPDATE,
                channel=ChannelKind.SMS,
                lang=lang,
                update=update,
                update_photo=with_photo,
            )
            whole = as_sentence(gsm_friendly(update.text))
            if self.sms_segments(sms) > self._max_sms_segments or whole not in sms:
                found.append(
                    TextProblem(
                        "text",
                        f"the update does not fit in an SMS of {self._max_sms_segments} parts "
                        "with its instruction; shorten it",
                    )
                )
            for channel, limit in CHAT_LIMITS.items():
                chat = self.text(action, kind=DeliveryKind.UPDATE, channel=channel, lang=lang, update=update)
                if len(chat) > limit:
                    found.append(
                        TextProblem("text", f"the {channel.value} update would be {len(chat)} characters")
                    )
        unique = {(p.field, p.message): p for p in found}
        return list(unique.values())


@dataclass(frozen=True)
class CostEstimate:
    """What an action's alert will cost, by channel, at the configured prices (EUR)."""

    recipients: int
    per_channel: dict[str, int]
    sms_segments: int
    voice_minutes: int
    whatsapp_templates: int
    whatsapp_sessions: int
    cost_eur: dict[str, float]
    total_eur: float


def estimate_cost(
    texts: AlertTexts,
    action: Action,
    recipients: Sequence[Recipient],
    *,
    settings: Settings,
    now: datetime,
) -> CostEstimate:
    """Count recipients per first channel and price the alert: SMS per segment, voice per minute,
    WhatsApp per template message (outside the 24-hour window) or session message."""
    per_channel: dict[str, int] = {kind.value: 0 for kind in ChannelKind}
    sms_segments = voice_minutes = templates = sessions = 0
    segments_by_lang: dict[str, int] = {}
    minutes_by_lang: dict[str, int] = {}
    window = timedelta(hours=settings.whatsapp_window_hours)
    for person in recipients:
        channel = person.first.channel
        per_channel[channel.value] += 1
        lang = person.language
        if channel is ChannelKind.SMS:
            if lang not in segments_by_lang:
                text = texts.text(action, kind=DeliveryKind.ALERT, channel=channel, lang=lang)
                segments_by_lang[lang] = texts.sms_segments(text)
            sms_segments += segments_by_lang[lang]
        elif channel is ChannelKind.VOICE:
            if lang not in minutes_by_lang:
                text = texts.text(action, kind=DeliveryKind.ALERT, channel=channel, lang=lang)
                minutes_by_lang[lang] = texts.voice_minutes(text)
            voice_minutes += minutes_by_lang[lang]
        elif channel is ChannelKind.WHATSAPP:
            inbound = person.first.last_inbound_at
            if inbound is not None and now - inbound < window:
                sessions += 1
            else:
                templates += 1
    cost = {
        "sms": round(sms_segments * settings.price_sms_segment_eur, 2),
        "voice": round(voice_minutes * settings.price_voice_minute_eur, 2),
        "whatsapp": round(
            templates * settings.price_whatsapp_template_eur + sessions * settings.price_whatsapp_session_eur,
            2,
        ),
        "telegram": 0.0,
    }
    return CostEstimate(
        recipients=len(recipients),
        per_channel=per_channel,
        sms_segments=sms_segments,
        voice_minutes=voice_minutes,
        whatsapp_templates=templates,
        whatsapp_sessions=sessions,
        cost_eur=cost,
        total_eur=round(sum(cost.values()), 2),
    )
