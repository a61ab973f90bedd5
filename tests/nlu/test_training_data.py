"""The Rasa project files: the loader, the size and separation of the data, domain and config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nlu.entities import ENTITY_NAMES
from nlu.training import (
    DATA_DIR,
    TEST_FILE,
    TRAINING_FILE,
    AnnotatedEntity,
    TrainingDataError,
    load_training_data,
    parse_example,
)

NLU_DIR = DATA_DIR.parent
INTENTS = (
    "register",
    "change_address",
    "unsubscribe",
    "my_data",
    "help",
    "give_tip",
    "affirm",
    "deny",
    "greet",
    "out_of_scope",
)


@pytest.mark.parametrize(
    ("marked", "plain", "entities"),
    [
        ("hallo", "hallo", ()),
        (
            "een [rode jas](description) bij de [Jumbo](place)",
            "een rode jas bij de Jumbo",
            (AnnotatedEntity("description", 4, 12, "rode jas"), AnnotatedEntity("place", 20, 25, "Jumbo")),
        ),
        ("[12bbj3](vehicle_plate:12-BBJ-3)", "12bbj3", (AnnotatedEntity("vehicle_plate", 0, 6, "12-BBJ-3"),)),
        (
            'naar het [noorden]{"entity": "direction", "value": "north"}',
            "naar het noorden",
            (AnnotatedEntity("direction", 9, 16, "north"),),
        ),
    ],
    ids=["plain", "two-entities", "short-value", "json"],
)
def test_parse_example(marked: str, plain: str, entities: tuple[AnnotatedEntity, ...]) -> None:
    example = parse_example(marked, "give_tip")
    assert example.text == plain
    assert example.entities == entities
    for e in example.entities:
        assert plain[e.start : e.end]


def test_bad_json_annotation_is_refused() -> None:
    with pytest.raises(TrainingDataError):
        parse_example('[x]{"value": "y"}', "give_tip")


@pytest.mark.parametrize(
    "content",
    ["just text", "nlu: 3", "nlu:\n- intent: greet\n  examples: hallo\n", "nlu:\n- story: x\n"],
    ids=["no-mapping", "nlu-not-list", "examples-not-block", "unknown-item"],
)
def test_malformed_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "nlu.yml"
    path.write_text(content)
    with pytest.raises(TrainingDataError):
        load_training_data(path)


def test_every_intent_has_enough_examples() -> None:
    data = load_training_data(TRAINING_FILE)
    assert set(data.intents) == set(INTENTS)
    for intent in INTENTS:
        count = sum(1 for e in data.examples if e.intent == intent)
        assert count >= 45, f"{intent}: {count} examples (30 Dutch + 15 English needed)"


def test_training_entities_are_known_and_well_placed() -> None:
    data = load_training_data(TRAINING_FILE)
    for example in data.examples:
        for e in example.entities:
            assert e.entity in ENTITY_NAMES
            segment = example.text[e.start : e.end]
            assert segment == segment.strip(), f"entity with spaces at its edges in {example.text!r}"


def test_regexes_compile() -> None:
    data = load_training_data(TRAINING_FILE)
    assert {"vehicle_plate", "action_code"} <= set(data.regexes)
    for patterns in data.regexes.values():
        for pattern in patterns:
            re.compile(pattern)


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def test_test_set_is_held_out() -> None:
    train = {_norm(e.text) for e in load_training_data(TRAINING_FILE).examples}
    test = load_training_data(TEST_FILE).examples
    leaked = [e.text for e in test if _norm(e.text) in train]
    assert leaked == []
    assert set(load_training_data(TEST_FILE).intents) == set(INTENTS)
    assert all(sum(1 for e in test if e.intent == i) >= 8 for i in INTENTS)


def test_test_set_annotates_tip_entities() -> None:
    test = load_training_data(TEST_FILE).examples
    names = {e.entity for ex in test for e in ex.entities}
    assert names == set(ENTITY_NAMES)


def test_domain_lists_intents_and_entities() -> None:
    domain = yaml.safe_load((NLU_DIR / "domain.yml").read_text())
    assert domain["version"] == "3.1"
    assert set(domain["intents"]) == set(INTENTS)
    assert set(domain["entities"]) == set(ENTITY_NAMES)


def test_config_is_a_rasa_nlu_pipeline() -> None:
    config = yaml.safe_load((NLU_DIR / "config.yml").read_text())
    assert config["language"] == "nl"
    names = [c["name"] for c in config["pipeline"]]
    assert names[0] == "WhitespaceTokenizer"
    needed = {"RegexFeaturizer", "LexicalSyntacticFeaturizer", "CountVectorsFeaturizer"}
    needed.add("EntitySynonymMapper")
    assert needed <= set(names)
    assert "DIETClassifier" in names or "LogisticRegressionClassifier" in names
    char = [c for c in config["pipeline"] if c.get("analyzer") == "char_wb"]
    assert char and char[0]["min_ngram"] == 1 and char[0]["max_ngram"] == 4
