"""The built-in parser: char n-gram TF-IDF + logistic regression, trained at start-up from `nlu/data/nlu.yml`.

Offline and fast (well under a millisecond a message): the default when no Rasa server is configured,
and Rasa's fallback when it is down. Entities come from the rules in `nlu/entities.py`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.dutch_time import AMSTERDAM
from nlu.entities import extract_tip_entities
from nlu.training import TRAINING_FILE, TrainingData, load_training_data
from nlu.types import Entity, Intent, ParseResult

OUT_OF_SCOPE: Final = "out_of_scope"
# Chosen by 5-fold cross-validation on nlu.yml: 0.2 and 0.25 score alike (0.79, 0.78 accuracy), higher
# thresholds lose real intents; 0.25 keeps a little more nonsense out.
DEFAULT_THRESHOLD: Final = 0.25
MAX_TEXT: Final = 2000
RANKING_SIZE: Final = 10


def normalise(text: str) -> str:
    """What the classifier sees: lower case, no accents, digits as 0, single spaces."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"\d", "0", text)
    return re.sub(r"\s+", " ", text).strip()


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class TrainedModel:
    """What training leaves: the labels, the weights and the two n-gram vocabularies (read-only)."""

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    blocks: tuple[tuple[Callable[[str], list[str]], dict[str, int], np.ndarray, int], ...]
    chars: TfidfVectorizer
    words: TfidfVectorizer
    estimator: LogisticRegression
    """scikit-learn's own objects: the reference the hand-written scoring is tested against."""


def train(data: TrainingData) -> TrainedModel:
    """Fit the TF-IDF vocabularies and the logistic regression on the examples."""
    texts = [normalise(e.text) for e in data.examples]
    labels = [e.intent for e in data.examples]
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=1)
    words = TfidfVectorizer(
        analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b"
    )
    features = hstack([chars.fit_transform(texts), words.fit_transform(texts)]).tocsr()
    # saga trains in a fraction of the time lbfgs needs on these sparse features.
    model = LogisticRegression(C=10.0, solver="saga", max_iter=3000, random_state=0)
    model.fit(features, labels)
    # Scoring one text by hand (n-grams, dictionary look-ups, one small matrix product) skips
    # scikit-learn's per-call validation and sparse-matrix building; the numbers are the same.
    return TrainedModel(
        labels=tuple(str(c) for c in model.classes_),
        coef=np.asarray(model.coef_).T,
        intercept=np.asarray(model.intercept_),
        blocks=(
            (chars.build_analyzer(), chars.vocabulary_, chars.idf_, 0),
            (words.build_analyzer(), words.vocabulary_, words.idf_, len(chars.idf_)),
        ),
        chars=chars,
        words=words,
        estimator=model,
    )


@lru_cache(maxsize=4)
def _trained_on(path: str, mtime_ns: int, size: int) -> TrainedModel:
    # Keyed by the file's time and size: an edited file is trained again, the same file once a process
    # (every runtime built in the process, in tests many, shares the read-only model).
    return train(load_training_data(Path(path)))


class BuiltinParser:
    """Classifies intents with a linear model over character and word n-grams; entities by rule.

    When the best intent's probability is below `threshold`, the intent is `out_of_scope`.
    """

    def __init__(
        self,
        data: TrainingData | TrainedModel,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        clock: Callable[[], datetime] = utc_now,
        timezone: str = AMSTERDAM,
        with_entities: bool = True,
    ) -> None:
        self._threshold = threshold
        self._clock = clock
        self._timezone = timezone
        self._with_entities = with_entities
        model = data if isinstance(data, TrainedModel) else train(data)
        self.trained = model
        self._labels = model.labels
        self._coef = model.coef
        self._intercept = model.intercept
        self._blocks = model.blocks

    def features(self, clean: str) -> tuple[np.ndarray, np.ndarray]:
        """The TF-IDF features of a normalised text as (column indices, values), as scikit-learn's."""
        all_indices: list[int] = []
        all_values: list[float] = []
        for analyze, vocabulary, idf, offset in self._blocks:
            counts: dict[int, int] = {}
            for gram in analyze(clean):
                index = vocabulary.get(gram)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            indices = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
            values = tf * idf[indices]
            values /= np.sqrt(values @ values)
            all_indices.extend((indices + offset).tolist())
            all_values.extend(values.tolist())
        return np.asarray(all_indices, dtype=np.int64), np.asarray(all_values, dtype=np.float64)

    @classmethod
    def from_file(cls, path: Path = TRAINING_FILE, **options: object) -> BuiltinParser:
        """Train on a Rasa NLU file (default `nlu/data/nlu.yml`), once per process for the same file."""
        stat = path.stat()
        return cls(_trained_on(str(path.resolve()), stat.st_mtime_ns, stat.st_size), **options)  # type: ignore[arg-type]

    @property
    def intents(self) -> tuple[str, ...]:
        """The intents the model knows."""
        return tuple(self._labels)

    def classify(self, text: str) -> tuple[Intent, ...]:
        """Every intent with its probability, best first."""
        clean = normalise(text[:MAX_TEXT])
        if not clean:
            return (Intent(OUT_OF_SCOPE, 1.0),)
        indices, values = self.features(clean)
        scores = values @ self._coef[indices] + self._intercept
        if len(self._labels) == 2:  # scikit-learn keeps one column for two classes: sigmoid = softmax(0, d)
            scores = np.array([0.0, scores[0]])
        scores = np.exp(scores - scores.max())
        return self._ranking(scores / scores.sum())

    def _ranking(self, probs: np.ndarray) -> tuple[Intent, ...]:
        order = np.argsort(-probs, kind="stable")[:RANKING_SIZE]
        return tuple(Intent(self._labels[i], float(probs[i])) for i in order)

    def parse_sync(self, text: str, received_at: datetime | None = None) -> ParseResult:
        """Parse one message; times in entities are resolved against `received_at` (default: now)."""
        ranking = self.classify(text)
        best = ranking[0]
        intent = best if best.confidence >= self._threshold else Intent(OUT_OF_SCOPE, 1.0 - best.confidence)
        entities: tuple[Entity, ...] = ()
        if self._with_entities and text.strip():
            entities = extract_tip_entities(text[:MAX_TEXT], received_at or self._clock(), self._timezone)
        return ParseResult(text=text, intent=intent, entities=entities, intent_ranking=ranking)

    async def parse(self, text: str) -> ParseResult:
        """Parse one message (the `Parser` protocol); CPU-bound and sub-millisecond, so no thread hop."""
        return self.parse_sync(text)
