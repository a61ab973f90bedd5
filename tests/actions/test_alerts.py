"""Alert, closing and tip-result texts: every channel, both languages; SMS always within two segments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.alerts import AlertTexts, gsm_friendly
from bot.channels.segments import Encoding, count_segments
from bot.messages import ChannelKind
from bot.texts import Catalogue
from storage.models import Action, ActionOutcome, ActionType, DeliveryKind

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
    "long-everything": {"description": LONG, "instruction": LONG[:300], "closing_text": LONG[:600]},
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
    sms = texts.text(_action(**fields), kind=kind, channel=ChannelKind.SMS, lang=lang)
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
    ("lang", "words"), [("nl", "Burgernetactie"), ("en", "Burgernet action")], ids=["nl", "en"]
)
def test_voice_text_is_speakable(texts: AlertTexts, lang: str, words: str) -> None:
    text = texts.text(_action(), kind=DeliveryKind.ALERT, channel=ChannelKind.VOICE, lang=lang)
    assert words in text and "🚨" not in text
    assert texts.voice_minutes(text) == 1


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
