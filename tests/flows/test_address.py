"""Address transcripts: replace the home address, add extra ones with a window, remove, limits, bad input."""

from __future__ import annotations

from datetime import time

import pytest

from bot.texts import Catalogue
from storage.db import SessionFactory
from storage.models import Address, ConversationState
from tests.flows.conftest import SMS, TELEGRAM, Converse, last, register_steps, rows, texts

REGISTERED = register_steps(SMS)
# A second address first, so the menu is asked (with one address the new one is asked at once).
TWO = ["TOEVOEGEN", "1012 AB 5", "JA", "ALTIJD", "ADRES"]
THREE = {"options": "WIJZIGEN / TOEVOEGEN / VERWIJDEREN"}


async def test_change_home_address(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    # One address on file: no WIJZIGEN/TOEVOEGEN menu, the new address is asked at once.
    transcript = await converse(SMS, [*REGISTERED, "adres", "1012 ab 5", "jep"])
    assert texts(transcript[-3]) == [catalogue.render("nl", "address.ask_new_home_single")]
    assert transcript[-3][0].buttons == ("TOEVOEGEN",)
    assert last(transcript).text == catalogue.render("nl", "address.home_saved", place="Amsterdam")
    [address] = rows(sessions, Address)
    assert (address.slot, address.postcode, address.house_number) == (1, "1012 AB", 5)


async def test_a_postcode_typed_at_the_menu_is_the_new_home_address(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    add = ["ADRES", "toevoegen", "1012 AB 5", "ja", "weekend"]
    transcript = await converse(SMS, [*REGISTERED, *add, "adres", "7522 nb 1", "klopt"])
    assert transcript[-3][0].buttons == ("WIJZIGEN", "TOEVOEGEN", "VERWIJDEREN")
    assert texts(transcript[-2])[0].startswith("7522 NB 1: is dit Enschede")
    assert last(transcript).text == catalogue.render("nl", "address.home_saved", place="Enschede")
    # By slot: PostgreSQL may return the updated home row last.
    home, work = sorted(rows(sessions, Address), key=lambda address: address.slot)
    assert (home.slot, home.postcode, work.postcode) == (1, "7522 NB", "1012 AB")


async def test_add_extra_address_with_a_weekday_window(converse: Converse, sessions: SessionFactory) -> None:
    transcript = await converse(
        SMS, [*REGISTERED, "ik heb een nieuw werkadres", "TOEVOEGEN", "1012 AB 5", "JA", "ma-vr 09:00-17:00"]
    )
    assert last(transcript).text.startswith("Extra adres 1012 AB 5 opgeslagen (ma-vr 09:00-17:00)")
    home, work = rows(sessions, Address)
    assert (home.slot, home.window_days) == (1, None)
    assert (work.slot, work.window_days, work.window_start, work.window_end) == (
        2,
        "12345",
        time(9),
        time(17),
    )
    assert work.municipality_name == "Amsterdam"


async def test_add_extra_address_always(converse: Converse, sessions: SessionFactory) -> None:
    await converse(SMS, [*REGISTERED, "ADRES", "toevoegen", "1012 AB 5", "JA", "ALTIJD"])
    work = rows(sessions, Address)[1]
    assert (work.window_days, work.window_start, work.window_end) == (None, None, None)


async def test_at_most_three_addresses(converse: Converse, sessions: SessionFactory) -> None:
    add = ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "weekend"]
    transcript = await converse(SMS, [*REGISTERED, *add, *add, "ADRES"])
    assert len(rows(sessions, Address)) == 3
    assert last(transcript).buttons == ("WIJZIGEN", "VERWIJDEREN")


async def test_remove_the_only_extra_address(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    add = ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "weekend"]
    transcript = await converse(SMS, [*REGISTERED, *add, "ADRES", "VERWIJDEREN", "JA"])
    assert transcript[-2][0].text == "Adres 1012 AB 5, Amsterdam verwijderen? (JA/NEE) (of: laat maar)"
    assert texts(transcript[-1]) == [catalogue.render("nl", "address.removed")]
    assert [a.slot for a in rows(sessions, Address)] == [1]


async def test_remove_one_of_two_extra_addresses_closes_the_gap(
    converse: Converse, sessions: SessionFactory
) -> None:
    add_work = ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "ma-vr 9-17"]
    add_club = ["ADRES", "TOEVOEGEN", "7522 NB 1", "JA", "za 10-16"]
    transcript = await converse(
        SMS, [*REGISTERED, *add_work, *add_club, "ADRES", "verwijderen", "4", "2", "JA"]
    )
    assert transcript[-4][0].buttons == ("2", "3")
    assert transcript[-3][0].text.startswith("Stuur het nummer van het adres: 2 / 3")
    assert transcript[-2][0].text == "Adres 1012 AB 5, Amsterdam verwijderen? (JA/NEE) (of: laat maar)"
    remaining = rows(sessions, Address)
    assert [(a.slot, a.postcode, a.window_days) for a in remaining] == [
        (1, "7511 AB", None),
        (2, "7522 NB", "6"),
    ]


async def test_nee_at_removal_keeps_the_address(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    add = ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "weekend"]
    transcript = await converse(SMS, [*REGISTERED, *add, "ADRES", "VERWIJDEREN", "NEE"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "address.remove_cancelled")]
    assert len(rows(sessions, Address)) == 2


@pytest.mark.parametrize(
    "branch", [["WIJZIGEN", "1012 AB 5"], ["TOEVOEGEN", "1012 AB 5"]], ids=["home", "extra"]
)
async def test_nee_at_the_place_asks_again(
    converse: Converse, catalogue: Catalogue, branch: list[str]
) -> None:
    transcript = await converse(SMS, [*REGISTERED, "ADRES", *branch, "NEE"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "address.ask_again")]


@pytest.mark.parametrize(
    ("steps", "answer", "key", "params"),
    [
        (
            TWO,
            "",
            "address.choose_retry",
            THREE,
        ),
        (
            TWO,
            "🙂",
            "address.choose_retry",
            THREE,
        ),
        (
            TWO,
            "x" * 5000,
            "address.choose_retry",
            THREE,
        ),
        (["WIJZIGEN"], "9999 ZZ", "address.missing_number", {"postcode": "9999 ZZ"}),
        (["WIJZIGEN"], "1000 AA 1", "address.unknown_postcode", {"postcode": "1000 AA"}),
        (["WIJZIGEN"], "7511 AB 0", "address.bad_number", {}),
        (["WIJZIGEN"], "<img src=x onerror=alert(1)>", "address.bad_format", {}),
        (["TOEVOEGEN", "1012 AB 5"], "misschien", "common.yes_no_retry", {}),
        (["TOEVOEGEN", "1012 AB 5", "JA"], "als het regent", "address.window_invalid", {}),
        (["TOEVOEGEN", "1012 AB 5", "JA"], "ma-vr 25:00-17:00", "address.window_invalid", {}),
        (["TOEVOEGEN", "1012 AB 5", "JA"], "x" * 5000, "address.window_invalid", {}),
        (["TOEVOEGEN", "1012 AB 5", "JA"], "", "address.window_invalid", {}),
    ],
    ids=[
        "choice-empty",
        "choice-emoji",
        "choice-long",
        "no-number",
        "unknown",
        "zero",
        "html",
        "place-maybe",
        "window-words",
        "window-25h",
        "window-long",
        "window-empty",
    ],
)
async def test_bad_answers_repeat_the_step(
    converse: Converse,
    sessions: SessionFactory,
    catalogue: Catalogue,
    steps: list[str],
    answer: str,
    key: str,
    params: dict[str, object],
) -> None:
    transcript = await converse(SMS, [*REGISTERED, "ADRES", *steps, answer])
    assert texts(transcript[-1]) == [catalogue.render("nl", key, **params)]
    assert transcript[-1][0].buttons == transcript[-2][-1].buttons
    [state] = rows(sessions, ConversationState)
    assert state.flow == "address"
    assert len(rows(sessions, Address)) == (2 if "ALTIJD" in steps else 1)


async def test_not_registered(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(TELEGRAM, ["ADRES"])
    assert texts(transcript[0]) == [catalogue.render("nl", "address.not_registered")]


async def test_in_english(converse: Converse, sessions: SessionFactory) -> None:
    transcript = await converse(
        SMS, [*REGISTERED, "ENGLISH", "ADDRESS", "ADD", "1012 AB 5", "YES", "Mon-Fri 9-17"]
    )
    assert transcript[-5][0].buttons == ("ADD",)
    assert last(transcript).text.startswith("Extra address 1012 AB 5 saved (Mon-Fri 09:00-17:00)")
    assert rows(sessions, Address)[1].window_days == "12345"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("ik ben verhuisd", "address.ask_new_home"),
        ("we are moving next week", "address.ask_new_home"),
        ("ik wil een werkadres toevoegen", "address.ask_extra"),
        ("mijn adres wijzigen", "address.ask_new_home_single"),
    ],
)
async def test_free_text_that_says_what_to_do_skips_the_menu(
    converse: Converse, catalogue: Catalogue, text: str, key: str
) -> None:
    transcript = await converse(SMS, [*REGISTERED, text])
    expected = catalogue.render(
        "nl", key, addresses="1. 7511 AB 12, Enschede (woonadres)", options="WIJZIGEN / TOEVOEGEN"
    )
    assert texts(transcript[-1]) == [expected]
