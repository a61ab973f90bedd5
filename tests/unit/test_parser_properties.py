"""Property tests over every text parser: random Unicode, control characters and huge texts never raise
anything but the parser's own named error, and what they accept comes back normalised and stable."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.segments import count_segments, is_gsm7
from bot.conversations import fold_for_sms
from bot.flows.keywords import KEYWORDS, Keyword, keyword_of
from nlu.dutch_time import find_time, find_times, resolve_time
from nlu.plates import InvalidPlate, find_plates, is_plate, normalise_plate, sidecode
from storage.actions import CODE_ALPHABET, normalise_code
from storage.geo import InvalidHouseNumber, InvalidPostcode, normalise_postcode, parse_address
from storage.phones import InvalidPhoneNumber, mask_phone, parse_mobile, to_e164

BOUNDED = settings(max_examples=200, deadline=None)

# Random text of every kind: any code point (surrogates excluded: they cannot arrive as UTF-8),
# control characters, and text built near each parser's own shape so that the accepting paths run too.
anything = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)
controls = st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zs", "Zl", "Zp"]), max_size=20)
huge = st.builds(lambda chunk, n: chunk * n, st.text(min_size=1, max_size=4), st.integers(2_000, 20_000))
digits = st.text(alphabet="0123456789", min_size=1, max_size=6)
letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=4)
glue = st.sampled_from(["", " ", "  ", "-", ",", ", ", ".", "\t", "\u00a0", "\n"])


def near(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Texts made of shaped parts joined by random separators, with random text around them."""
    pieces = [p for part in parts for p in (part, glue)]
    return st.tuples(anything.map(lambda s: s[:5]), *pieces, anything.map(lambda s: s[:5])).map("".join)


texts = st.one_of(anything, controls, huge)
addresses = st.one_of(texts, near(digits, letters, digits, letters), near(digits, letters, digits))
phones = st.one_of(
    texts,
    near(st.sampled_from(["+31", "0031", "06", "+32", "+1", "0", "+", "00"]), digits, digits),
    st.from_regex(r"\A\+?[0-9 ()\-.]{6,20}\Z"),
)
plates = st.one_of(
    texts, near(digits, letters, digits), near(letters, digits, letters), near(letters, digits)
)
codes = st.one_of(
    texts,
    st.tuples(st.sampled_from(["BN", "bn", "Bn"]), glue, st.text(CODE_ALPHABET, max_size=6)).map("".join),
)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@BOUNDED
@given(addresses)
def test_postcode_and_house_number_raise_only_their_own_errors(text: str) -> None:
    try:
        postcode = normalise_postcode(text)
    except InvalidPostcode:
        pass
    else:
        assert re.fullmatch(r"[1-9]\d{3}( [A-Z]{2})?", postcode)
        assert normalise_postcode(postcode) == postcode
    try:
        parsed = parse_address(text)
    except (InvalidPostcode, InvalidHouseNumber):
        return
    assert re.fullmatch(r"[1-9]\d{3} [A-Z]{2}", parsed.postcode)
    assert 1 <= parsed.house_number <= 99_999
    again = parse_address(f"{parsed.postcode} {parsed.house_number}{parsed.addition or ''}")
    assert again == parsed


@BOUNDED
@given(phones)
def test_phone_numbers_raise_only_invalid_phone_number(text: str) -> None:
    for parse in (to_e164, parse_mobile):
        try:
            e164 = parse(text)
        except InvalidPhoneNumber as exc:
            assert exc.reason in {"not_a_number", "not_mobile", "not_eu"}
            continue
        assert re.fullmatch(r"\+[1-9]\d{6,14}", e164)
        assert parse(e164) == e164
        masked = mask_phone(e164)
        # The mask keeps the last four digits only: the whole national number never shows.
        assert e164[-8:] not in masked.replace(" ", "")
    assert mask_phone(text)


@BOUNDED
@given(plates)
def test_plates_raise_only_invalid_plate_and_normalise_stably(text: str) -> None:
    for strict in (True, False):
        try:
            value = normalise_plate(text, strict=strict)
        except InvalidPlate:
            continue
        assert re.fullmatch(r"[A-Z0-9]{1,3}(-[A-Z0-9]{1,3}){2}", value)
        assert normalise_plate(value, strict=strict) == value
        assert sidecode(value, strict=strict) == sidecode(text, strict=strict)
    assert isinstance(is_plate(text), bool)
    for mention in find_plates(text):
        assert text[mention.start : mention.end] == mention.text
        assert normalise_plate(mention.value, strict=False) == mention.value


@settings(max_examples=100, deadline=None)
@given(texts, moments)
def test_times_in_random_text_never_raise_and_stay_near_the_message(text: str, received_at: datetime) -> None:
    for mention in find_times(text, received_at):
        assert mention.value.tzinfo is not None
        assert text[mention.start : mention.end] == mention.text
        assert abs(mention.value - received_at) < timedelta(days=400)
    first = find_time(text, received_at)
    assert first is None or first.text in text
    resolved = resolve_time(text[:100], received_at)
    assert resolved is None or resolved.tzinfo is not None


@BOUNDED
@given(codes)
def test_action_codes_raise_only_value_error(text: str) -> None:
    try:
        code = normalise_code(text)
    except ValueError:
        return
    assert re.fullmatch(rf"BN-[{CODE_ALPHABET}]{{4}}", code)
    assert normalise_code(code) == code


@BOUNDED
@given(st.one_of(texts, st.sampled_from(sorted(KEYWORDS)), st.sampled_from(sorted(KEYWORDS)).map(str.upper)))
def test_keyword_of_never_raises(text: str) -> None:
    keyword = keyword_of(text)
    assert keyword is None or isinstance(keyword, Keyword)
    if text in KEYWORDS:
        assert keyword is KEYWORDS[text]


@BOUNDED
@given(texts)
def test_fold_for_sms_never_raises_and_never_costs_more_parts(text: str) -> None:
    folded = fold_for_sms(text)
    assert count_segments(folded).segments <= count_segments(text).segments
    if is_gsm7(text):
        assert folded == text


# Letters Dutch, Frisian and neighbouring names use; GSM-7 lacks most of them, their base letter is in it.
ACCENTED = "áàâäãéèêëíìîïóòôöõúùûüýÿçñÁÀÂÄÃÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÝÇÑ’‘“”–—…"


@BOUNDED
@given(st.text(alphabet=ACCENTED + "abcXYZ 0123-'", max_size=200))
def test_fold_for_sms_makes_accented_latin_text_gsm7(text: str) -> None:
    assert is_gsm7(fold_for_sms(text))
