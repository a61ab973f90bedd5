"""Alert, closing and tip-result texts: every channel, both languages; SMS always within two segments."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.alerts import UPDATE_KINDS, AlertTexts, RelayRef, as_sentence, gsm_friendly, spoken_numbers
from bot.channels.segments import Encoding, count_segments
from bot.texts import Catalogue
from storage.models import Action, ActionOutcome, ActionType, ActionUpdate, DeliveryKind, RelayPlatform
from storage.vocabulary import ChannelKind

NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


def _action(**fields: object) -> Action:
    base: dict[str, object] = {
        "code": "BN-4K7P",
        "type": ActionType.MISSING_PERSON,
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
        "instruction": "Bel 112 als u hem ziet.",
        "area": {},
        "created_at": NOW,
        "expires_at": NOW,
        "outcome": ActionOutcome.FOUND,
        "closing_text": "Tim is gevonden.",
    }
    base.update(fields)
    return Action(**base)  # type: ignore[arg-type]


LONG = "Een man van ongeveer 40 jaar met een grijze baard en een rode rugzak, " * 8
CASES = {
    "short": {},
    "long-description": {"description": LONG},
    # An instruction is never cut; one too long for an SMS is refused when the action is made (below).
    "long-everything": {"description": LONG, "instruction": LONG[:200], "closing_text": LONG[:600]},
    "typographic-quotes": {"description": "Hij zei “ik ga naar huis” – en liep weg… " * 5},
    "emoji-forces-ucs2": {"description": "🚲 Gestolen fiets, rood frame. " * 10},
    "long-headline": {"headline": "Overval op juwelier aan de Oude Markt, twee daders op een scooter " * 2},
}


@pytest.fixture(scope="module")
def texts() -> AlertTexts:
    return AlertTexts(Catalogue.load())


@pytest.mark.parametrize("fields", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("kind", list(DeliveryKind), ids=[k.value for k in DeliveryKind])
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_sms_fits_two_segments_and_keeps_the_code(
    texts: AlertTexts, fields: dict[str, object], kind: DeliveryKind, lang: str
) -> None:
    action = _action(**fields)
    # An update carries its own text: here the case's description, long or short.
    update = (
        ActionUpdate(action_id=1, number=1, text=action.description, created_at=NOW, created_by="test")
        if kind in UPDATE_KINDS
        else None
    )
    sms = texts.text(action, kind=kind, channel=ChannelKind.SMS, lang=lang, update=update)
    assert count_segments(sms).segments <= 2, sms
    assert "BN-4K7P" in sms


def test_typographic_characters_keep_an_sms_in_gsm7(texts: AlertTexts) -> None:
    sms = texts.text(
        _action(**CASES["typographic-quotes"]), kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang="nl"
    )
    assert count_segments(sms).encoding is Encoding.GSM7
    assert gsm_friendly("“a” – b…") == '"a" - b...'


def test_short_alert_sms_is_whole(texts: AlertTexts) -> None:
    action = _action()
    sms = texts.text(action, kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang="nl")
    assert action.headline in sms and action.description in sms and "112" in sms


def test_shortened_sms_ends_its_cut_field_with_an_ellipsis(texts: AlertTexts) -> None:
    sms = texts.text(_action(description=LONG), kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang="nl")
    assert "..." in sms and LONG.strip() not in sms


@pytest.mark.parametrize(
    ("channel", "limit"),
    [(ChannelKind.TELEGRAM, 4096), (ChannelKind.WHATSAPP, 1600)],
    ids=["telegram", "whatsapp"],
)
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_chat_alert_is_whole_with_code_and_how_to_reply(
    texts: AlertTexts, channel: ChannelKind, limit: int, lang: str
) -> None:
    action = _action()
    text = texts.text(action, kind=DeliveryKind.ALERT, channel=channel, lang=lang)
    assert len(text) <= limit
    for part in (action.code, action.headline, action.description, action.instruction, "112"):
        assert part in text


@pytest.mark.parametrize(
    ("lang", "words"), [("nl", "Burgernetactie"), ("en", "Burgernet alert")], ids=["nl", "en"]
)
def test_voice_text_is_speakable(texts: AlertTexts, lang: str, words: str) -> None:
    text = texts.text(_action(), kind=DeliveryKind.ALERT, channel=ChannelKind.VOICE, lang=lang)
    assert words in text and "🚨" not in text
    assert texts.voice_minutes(text) == 1
    # No code to spell out letter by letter in a call.
    assert "BN-4K7P" not in text


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("Bel 112 als u hem ziet.", "Bel 1 1 2 als u hem ziet."),
        ("Anoniem: 0800-7000.", "Anoniem: 0 8 0 0 7 0 0 0."),
        ("Bel 0900 8844 of 112.", "Bel 0 9 0 0 8 8 4 4 of 1 1 2."),
        ("Sinds 14:00, jongen van 8, huisnummer 1124.", "Sinds 14:00, jongen van 8, huisnummer 1124."),
    ],
)
def test_numbers_to_dial_are_said_digit_by_digit(written: str, said: str) -> None:
    assert spoken_numbers(written) == said


@pytest.mark.parametrize("outcome", list(ActionOutcome), ids=[o.value for o in ActionOutcome])
def test_closing_names_the_outcome(texts: AlertTexts, outcome: ActionOutcome) -> None:
    catalogue = Catalogue.load()
    text = texts.text(
        _action(outcome=outcome), kind=DeliveryKind.CLOSING, channel=ChannelKind.TELEGRAM, lang="nl"
    )
    assert catalogue.render("nl", f"action.outcome.{outcome.value}") in text


def test_both_catalogues_have_the_same_action_keys() -> None:
    catalogue = Catalogue.load()
    nl = {k for k in catalogue.keys("nl") if k.startswith("action.")}
    en = {k for k in catalogue.keys("en") if k.startswith("action.")}
    assert nl == en
    assert {f"action.type.{t.value}" for t in ActionType} <= nl


def test_template_variables_carry_code_type_headline(texts: AlertTexts) -> None:
    variables = texts.template_variables(_action(), kind=DeliveryKind.ALERT, lang="nl")
    assert variables == {
        "1": "BN-4K7P",
        "2": "Vermissing",
        "3": "Vermist: jongen (8), blauwe jas",
        "4": "Bel 112 als u hem ziet.",
    }


# The operator's instruction is what keeps a citizen safe: every channel carries it whole, with the code
# and 112; an SMS that must be cut loses description and headline first.
INSTRUCTION = "Ziet u hem? Spreek hem rustig aan en bel 112."
LONG_INSTRUCTION = (
    "Benader hem niet: hij is mogelijk gewapend. Houd afstand, let op zijn looprichting en bel direct 112. "
    "Deel geen foto's op sociale media."
)
ALERT_CASES = {
    "instruction": {"instruction": INSTRUCTION},
    "no-full-stop": {
        "description": "Twee mannen op een zwarte scooter, zwarte helmen",
        "instruction": INSTRUCTION,
    },
    "long-description": {"description": LONG, "instruction": INSTRUCTION},
    "long-instruction": {"description": LONG, "instruction": LONG_INSTRUCTION},
    "long-headline": {
        "headline": "Overval op juwelier aan de Oude Markt, twee daders op een scooter " * 2,
        "description": LONG,
        "instruction": LONG_INSTRUCTION,
    },
    "quotes-in-instruction": {
        "description": LONG,
        "instruction": "Zegt hij “Tim”? Bel 112 – niet zelf achterna.",
    },
}
ALERT_CHANNELS = [ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM, ChannelKind.VOICE]


@pytest.mark.parametrize("fields", ALERT_CASES.values(), ids=ALERT_CASES.keys())
@pytest.mark.parametrize("channel", ALERT_CHANNELS, ids=[c.value for c in ALERT_CHANNELS])
@pytest.mark.parametrize("kind", [DeliveryKind.ALERT, DeliveryKind.RELAY_ALERT], ids=["alert", "relay"])
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_alert_carries_the_instruction_code_and_112(
    fields: dict[str, object], channel: ChannelKind, kind: DeliveryKind, lang: str
) -> None:
    texts = AlertTexts(Catalogue.load(), whatsapp_number="+3197010254321", telegram_bot="BurgernetTestBot")
    relay = RelayRef(7, RelayPlatform.WHATSAPP) if kind is DeliveryKind.RELAY_ALERT else None
    action = _action(**fields)
    text = texts.text(action, kind=kind, channel=channel, lang=lang, relay=relay)
    instruction = as_sentence(action.instruction)
    if channel is ChannelKind.SMS:
        instruction = gsm_friendly(instruction)
    emergency = "112"
    if channel is ChannelKind.VOICE:
        # Said digit by digit: read as a number, 112 would be "honderdtwaalf".
        instruction, emergency = spoken_numbers(instruction), "1 1 2"
        assert "112" not in text
    assert instruction in text
    assert emergency in text.replace(instruction, "")
    if channel is not ChannelKind.VOICE:
        assert action.code in text
    if channel is ChannelKind.SMS:
        assert count_segments(text).segments <= 2, text
    if relay is not None and channel is not ChannelKind.VOICE:
        assert "R7" in text  # the tip link survives the squeeze
    # Sentences are joined with their punctuation: nothing the operator wrote runs into the next one.
    assert "helmen Tip" not in text and "helmen Ziet" not in text and "helmen\n" not in text
    if action.description == "Twee mannen op een zwarte scooter, zwarte helmen":
        assert "zwarte helmen. " in text or "zwarte helmen.\n" in text


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_sms_alert_cuts_the_description_before_the_headline(texts: AlertTexts, lang: str) -> None:
    action = _action(description=LONG, instruction=LONG_INSTRUCTION)
    sms = texts.text(action, kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang=lang)
    assert as_sentence(action.headline) in sms and LONG_INSTRUCTION in sms
    assert "..." in sms and LONG.strip() not in sms


@pytest.mark.parametrize(
    "channel", [ChannelKind.TELEGRAM, ChannelKind.WHATSAPP], ids=["telegram", "whatsapp"]
)
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_chat_alert_asks_for_a_reply_without_naming_the_code(
    texts: AlertTexts, channel: ChannelKind, lang: str
) -> None:
    # A reply to the alert (or any tip from someone who got it) is linked without the code; the code is
    # asked for only when the sender has several running alerts (tip.which_action).
    text = texts.text(_action(), kind=DeliveryKind.ALERT, channel=channel, lang=lang)
    assert "noem" not in text and "mention" not in text


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("zwarte helmen", "zwarte helmen."),
        ("Bel 112!", "Bel 112!"),
        ("Ziet u hem?", "Ziet u hem?"),
        ("Jongen (8)", "Jongen (8)."),
        ('Hij riep "stop."', 'Hij riep "stop."'),
        ("en verder…", "en verder…"),
        ("  ", ""),
    ],
)
def test_as_sentence_adds_a_full_stop_only_where_one_is_missing(text: str, sentence: str) -> None:
    assert as_sentence(text) == sentence


THANKING = re.compile(r"\b(dank|bedankt|thank)", re.IGNORECASE)
CLOSING_CHANNELS = [ChannelKind.SMS, ChannelKind.TELEGRAM, ChannelKind.VOICE]


@pytest.mark.parametrize("channel", CLOSING_CHANNELS, ids=[c.value for c in CLOSING_CHANNELS])
@pytest.mark.parametrize("kind", [DeliveryKind.CLOSING, DeliveryKind.RELAY_CLOSING], ids=["closing", "relay"])
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_closing_thanks_once(texts: AlertTexts, channel: ChannelKind, kind: DeliveryKind, lang: str) -> None:
    thanked = _action(closing_text="Tim is gevonden. Dank voor het uitkijken!")
    text = texts.text(thanked, kind=kind, channel=channel, lang=lang)
    assert len(THANKING.findall(text)) == 1, text
    plain = texts.text(_action(closing_text="Tim is gevonden"), kind=kind, channel=channel, lang=lang)
    assert len(THANKING.findall(plain)) == 1, plain
    assert "Tim is gevonden." in plain  # the closing text ends as a sentence before our thanks


def test_an_instruction_that_cannot_fit_an_sms_is_a_problem(texts: AlertTexts) -> None:
    action = _action(description=LONG, instruction=LONG[:300])
    assert [p.field for p in texts.problems(action)] == ["instruction"]
    assert texts.problems(_action(description=LONG, instruction=LONG_INSTRUCTION)) == []


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_a_relayed_alert_without_a_tip_link_asks_for_the_code(texts: AlertTexts, lang: str) -> None:
    # Group members cannot reply to a forwarded alert; without a link to the bot they must name the code.
    relay = RelayRef(7, RelayPlatform.WHATSAPP)
    for channel in (ChannelKind.WHATSAPP, ChannelKind.SMS):
        text = texts.text(_action(), kind=DeliveryKind.RELAY_ALERT, channel=channel, lang=lang, relay=relay)
        assert text.count("BN-4K7P") == 2 and "0900-8844" in text
        assert channel is not ChannelKind.SMS or count_segments(text).segments <= 2
    linked = AlertTexts(Catalogue.load(), whatsapp_number="+3197010254321")
    text = linked.text(
        _action(), kind=DeliveryKind.RELAY_ALERT, channel=ChannelKind.WHATSAPP, lang=lang, relay=relay
    )
    assert "0900-8844" not in text and "wa.me" in text
