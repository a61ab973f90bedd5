"""SMS segment counting: GSM-7 160/153 with double-cost extension characters, UCS-2 70/67."""

from __future__ import annotations

import pytest

from bot.channels.segments import Encoding, count_segments, is_gsm7

G, U = Encoding.GSM7, Encoding.UCS2

CASES = [
    # text, encoding, segments, units
    pytest.param("", G, 1, 0, id="empty"),
    pytest.param("a" * 160, G, 1, 160, id="gsm7-160"),
    pytest.param("a" * 161, G, 2, 161, id="gsm7-161"),
    pytest.param("a" * 306, G, 2, 306, id="gsm7-306-two-parts"),
    pytest.param("a" * 307, G, 3, 307, id="gsm7-307-three-parts"),
    pytest.param("€" * 80, G, 1, 160, id="euro-counts-double"),
    pytest.param("a" + "€" * 80, G, 2, 161, id="euro-over-one-part"),
    pytest.param("{}" + "a" * 157, G, 2, 161, id="braces-count-double"),
    pytest.param("a" * 152 + "€" + "a" * 10, G, 2, 164, id="escape-pair-not-split"),
    pytest.param("Café, één persoon", G, 1, 17, id="dutch-e-acute-is-gsm7"),
    pytest.param("é" * 160, G, 1, 160, id="only-e-acute"),
    pytest.param("Geëvacueerd", U, 1, 11, id="e-diaeresis-is-not-gsm7"),
    pytest.param("ë" * 70, U, 1, 70, id="ucs2-70"),
    pytest.param("ë" * 71, U, 2, 71, id="ucs2-71"),
    pytest.param("ë" * 134, U, 2, 134, id="ucs2-134-two-parts"),
    pytest.param("ë" * 135, U, 3, 135, id="ucs2-135-three-parts"),
    pytest.param("🚨" * 35, U, 1, 70, id="emoji-35-is-70-units"),
    pytest.param("🚨" * 35 + "a", U, 2, 71, id="emoji-one-more-unit"),
    pytest.param("a" * 66 + "🚨" + "a" * 66, U, 3, 134, id="surrogate-pair-not-split"),
    pytest.param("JA\nNEE", G, 1, 6, id="newline-is-gsm7"),
    pytest.param("`code`", U, 1, 6, id="backtick-is-not-gsm7"),
]


@pytest.mark.parametrize(("text", "encoding", "segments", "units"), CASES)
def test_count_segments(text: str, encoding: Encoding, segments: int, units: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.segments, count.units) == (encoding, segments, units)


def test_dutch_alert_stays_gsm7() -> None:
    alert = "Burgernet: vermist meisje (8), blond haar, roze jas. Gezien? Antwoord met uw tip. BN-4821"
    assert is_gsm7(alert)
    assert count_segments(alert).segments == 1
