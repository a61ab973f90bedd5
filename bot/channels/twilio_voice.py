"""TwiML for calls: an alert said twice, then "press 1 for the control room, 2 for a spoken tip"."""

from __future__ import annotations

from functools import cache

from twilio.twiml.voice_response import VoiceResponse

from bot.messages import Keypad
from bot.texts import Catalogue

SAY_LANGUAGES = {"nl": "nl-NL", "en": "en-GB"}
DEFAULT_LANGUAGE = "nl"
GATHER_TIMEOUT_S = 6
RECORD_MAX_S = 120
MAX_TWIML_CHARS = 4000  # Twilio refuses longer inline TwiML on calls.create
CONTROLROOM_DIGIT = "1"
TIP_DIGIT = "2"
# The menu of a call to our number: the keys map to the keywords any channel has.
MENU_CONTROLROOM_DIGIT = "0"
MENU_KEYWORDS = {"1": "START", "9": "STOP"}
MENU_LANGUAGES = {"2": "en", "3": "nl"}
KEYS_TIMEOUT_S = 10


def say_language(lang: str) -> str:
    """Twilio's `<Say language>` for one of our catalogue languages (Dutch when unknown)."""
    return SAY_LANGUAGES.get(lang, SAY_LANGUAGES[DEFAULT_LANGUAGE])


def catalogue_language(lang: str) -> str:
    """One of our languages for a language given in a callback URL (Dutch when unknown)."""
    return lang if lang in SAY_LANGUAGES else DEFAULT_LANGUAGE


def alert_twiml(*, text: str, lang: str, catalogue: Catalogue, gather_url: str) -> str:
    """The call that carries an alert: the text, once more, then 1 for the control room or 2 for a tip."""
    response = VoiceResponse()
    language = say_language(lang)
    # All inside the gather, so a key pressed while the alert is still being read counts.
    gather = response.gather(
        input="dtmf speech",
        action=gather_url,
        method="POST",
        num_digits=1,
        timeout=GATHER_TIMEOUT_S,
        speech_timeout="auto",
        language=language,
        action_on_empty_result=True,
    )
    gather.say(text, language=language)
    gather.say(catalogue.render(lang, "voice.repeat"), language=language)
    gather.say(text, language=language)
    gather.say(catalogue.render(lang, "voice.alert_prompt"), language=language)
    return str(response)


def say_twiml(*, text: str, lang: str) -> str:
    """A call that only says something (a verification code), then hangs up."""
    response = VoiceResponse()
    response.say(text, language=say_language(lang))
    response.hangup()
    return str(response)


def menu_twiml(*, lang: str, catalogue: Catalogue, menu_url: str) -> str:
    """A person calls our number: 1 sign up, 9 unsubscribe, 0 the control room, 2 English, or speak a tip."""
    response = VoiceResponse()
    # actionOnEmptyResult: silence is handled by the menu's action too (it offers a recorded tip).
    gather = response.gather(
        input="dtmf speech",
        action=menu_url,
        method="POST",
        num_digits=1,
        timeout=GATHER_TIMEOUT_S,
        speech_timeout="auto",
        language=say_language(lang),
        action_on_empty_result=True,
    )
    gather.say(catalogue.render(lang, "voice.menu"), language=say_language(lang))
    return str(response)


def keys_twiml(
    *, texts: list[str], keypad: Keypad | None, lang: str, catalogue: Catalogue, answer_url: str
) -> str:
    """Speak a conversation's replies; when they ask a question, gather its answer from the keys."""
    response = VoiceResponse()
    language = say_language(lang)
    if keypad is None:
        for text in texts:
            response.say(text, language=language)
        response.hangup()
        return str(response)
    keys: dict[str, object] = (
        {"num_digits": 1} if keypad is Keypad.ONE_KEY else {"finish_on_key": "#", "num_digits": 6}
    )
    gather = response.gather(input="dtmf", action=answer_url, method="POST", timeout=KEYS_TIMEOUT_S, **keys)
    for text in texts:
        gather.say(text, language=language)
    # Reached only when no key was pressed: the conversation waits in its state until it expires.
    response.say(catalogue.render(lang, "voice.no_input"), language=language)
    response.hangup()
    return str(response)


def connect_twiml(*, lang: str, catalogue: Catalogue, controlroom_phone: str) -> str:
    """The caller pressed 1: connect them to the control room."""
    response = VoiceResponse()
    response.say(catalogue.render(lang, "voice.connecting"), language=say_language(lang))
    response.dial(controlroom_phone)
    return str(response)


def record_twiml(*, lang: str, catalogue: Catalogue, recording_url: str) -> str:
    """Nothing understood (or no control room to connect to): record the tip after a beep."""
    response = VoiceResponse()
    response.say(catalogue.render(lang, "voice.record_prompt"), language=say_language(lang))
    response.record(
        action=recording_url,
        method="POST",
        max_length=RECORD_MAX_S,
        finish_on_key="#",
        play_beep=True,
        timeout=5,
    )
    # Reached only when nothing was recorded.
    response.say(catalogue.render(lang, "voice.goodbye"), language=say_language(lang))
    return str(response)


def thanks_twiml(*, lang: str, catalogue: Catalogue) -> str:
    """The tip arrived: thank the caller and hang up."""
    response = VoiceResponse()
    response.say(catalogue.render(lang, "voice.thanks"), language=say_language(lang))
    response.hangup()
    return str(response)


def replies_twiml(*, texts: list[str], lang: str, catalogue: Catalogue, gather_url: str) -> str:
    """Speak the bot's replies to what the caller said, and listen once more for an answer to them."""
    response = VoiceResponse()
    for text in texts:
        response.say(text, language=say_language(lang))
    # No actionOnEmptyResult here: silence after the replies ends the call politely.
    response.gather(
        input="dtmf speech",
        action=gather_url,
        method="POST",
        num_digits=1,
        timeout=GATHER_TIMEOUT_S,
        speech_timeout="auto",
        language=say_language(lang),
    )
    response.say(catalogue.render(lang, "voice.goodbye"), language=say_language(lang))
    response.hangup()
    return str(response)


@cache
def empty_twiml() -> str:
    """An empty `<Response/>`: we answer through the REST API, not in the webhook's reply."""
    return str(VoiceResponse())
