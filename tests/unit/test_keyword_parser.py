"""The keyword parser: the fallback NLU and the one flow tests use."""

from __future__ import annotations

import pytest

from nlu.keywords import KeywordParser


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("ik wil me aanmelden", "register"),
        ("Hoe kan ik meedoen?", "register"),
        ("I want to sign up", "register"),
        ("ik wil me afmelden", "unsubscribe"),
        ("geen berichten meer aub", "unsubscribe"),
        ("please unsubscribe me", "unsubscribe"),
        ("ik ben verhuisd", "change_address"),
        ("mijn adres wijzigen", "change_address"),
        ("I moved house", "change_address"),
        ("wat weten jullie van mij", "my_data"),
        ("Mijn Gegevens", "my_data"),
        ("show my data", "my_data"),
        ("hoe werkt dit", "help"),
        ("help", "help"),
        ("hallo", "greet"),
        ("Goedemorgen!", "greet"),
        ("ik zag een man met een rode jas richting station", "give_tip"),
        ("I saw a suspicious car", "give_tip"),
        ("ja", "affirm"),
        ("Klopt", "affirm"),
        ("nee", "deny"),
        ("🙂", "out_of_scope"),
        ("", "out_of_scope"),
        ("qwerty asdf", "out_of_scope"),
        ("مرحبا", "out_of_scope"),
    ],
)
async def test_intents(text: str, intent: str) -> None:
    result = await KeywordParser().parse(text)
    assert result.intent.name == intent
    assert result.text == text
    assert result.intent_ranking[0] == result.intent


async def test_a_match_is_confident_and_out_of_scope_is_not_below_threshold() -> None:
    parser = KeywordParser()
    assert (await parser.parse("aanmelden")).intent.confidence >= 0.8
    assert (await parser.parse("zzz")).intent.confidence < 0.8


async def test_huge_text_is_parsed() -> None:
    result = await KeywordParser().parse("blabla " * 2000 + "afmelden")
    assert result.intent.name == "unsubscribe"
