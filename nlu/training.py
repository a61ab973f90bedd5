"""Reading Rasa 3.x NLU training data (`nlu.yml`): intents, entity annotations, regexes, lookups."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"
TRAINING_FILE = DATA_DIR / "nlu.yml"
TEST_FILE = DATA_DIR / "test.yml"

# `[rode jas](description)`, `[12abc3](vehicle_plate:12-ABC-3)` or `[rood]{"entity": "description"}`
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<short>[^)]+)\)|(?P<json>\{[^}]*\}))")


class TrainingDataError(ValueError):
    """The file is not Rasa NLU training data we can read."""


@dataclass(frozen=True)
class AnnotatedEntity:
    """An entity marked in a training example: its span in the plain text and its value."""

    entity: str
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class TrainingExample:
    """One example sentence with its intent and its annotated entities (markup removed)."""

    text: str
    intent: str
    entities: tuple[AnnotatedEntity, ...] = ()


@dataclass(frozen=True)
class TrainingData:
    """The examples, regexes, lookup tables and synonyms of one or more Rasa NLU files."""

    examples: tuple[TrainingExample, ...]
    regexes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    lookups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    synonyms: dict[str, str] = field(default_factory=dict)

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents, in the order they first appear."""
        return tuple(dict.fromkeys(e.intent for e in self.examples))


def parse_example(marked: str, intent: str) -> TrainingExample:
    """Strip Rasa's entity markup from one example, keeping the spans in the plain text."""
    plain: list[str] = []
    entities: list[AnnotatedEntity] = []
    pos = 0
    length = 0
    for m in _ANNOTATION.finditer(marked):
        before = marked[pos : m.start()]
        plain.append(before)
        length += len(before)
        text = m.group("text")
        entity, value = _annotation(m, text)
        entities.append(AnnotatedEntity(entity, length, length + len(text), value))
        plain.append(text)
        length += len(text)
        pos = m.end()
    plain.append(marked[pos:])
    return TrainingExample("".join(plain), intent, tuple(entities))


def _annotation(m: re.Match[str], text: str) -> tuple[str, str]:
    if m.group("short") is not None:
        name, _, value = m.group("short").partition(":")
        return name.strip(), value.strip() or text
    try:
        spec = json.loads(m.group("json"))
    except json.JSONDecodeError as exc:
        raise TrainingDataError(f"bad entity annotation {m.group(0)!r}") from exc
    if not isinstance(spec, dict) or "entity" not in spec:
        raise TrainingDataError(f"entity annotation without a name: {m.group(0)!r}")
    return str(spec["entity"]), str(spec.get("value", text))


def _lines(block: Any, where: str) -> list[str]:
    if not isinstance(block, str):
        raise TrainingDataError(f"{where}: examples must be a block of '- ' lines")
    out = []
    for raw in block.splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("- "):
            raise TrainingDataError(f"{where}: example line without '- ': {line!r}")
        out.append(line[2:].strip())
    return out


def load_training_data(*paths: Path) -> TrainingData:
    """Read Rasa NLU YAML files (`version`, `nlu:` list of intent/regex/lookup/synonym items)."""
    examples: list[TrainingExample] = []
    regexes: dict[str, tuple[str, ...]] = {}
    lookups: dict[str, tuple[str, ...]] = {}
    synonyms: dict[str, str] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise TrainingDataError(f"{path}: not YAML: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("nlu"), list):
            raise TrainingDataError(f"{path}: no 'nlu:' list")
        for item in doc["nlu"]:
            if not isinstance(item, dict):
                raise TrainingDataError(f"{path}: 'nlu:' items must be mappings")
            if "intent" in item:
                intent = str(item["intent"])
                lines = _lines(item.get("examples"), f"{path} intent {intent}")
                examples.extend(parse_example(line, intent) for line in lines)
            elif "regex" in item:
                regexes[str(item["regex"])] = tuple(_lines(item.get("examples"), f"{path} regex"))
            elif "lookup" in item:
                lookups[str(item["lookup"])] = tuple(_lines(item.get("examples"), f"{path} lookup"))
            elif "synonym" in item:
                for line in _lines(item.get("examples"), f"{path} synonym"):
                    synonyms[line.lower()] = str(item["synonym"])
            else:
                raise TrainingDataError(f"{path}: unknown 'nlu:' item {sorted(item)}")
    if not examples:
        raise TrainingDataError("no intent examples")
    return TrainingData(tuple(examples), regexes, lookups, synonyms)
