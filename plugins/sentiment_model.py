"""Built-in enrichment ``minilm-lr``: sentiment and kind from the item's MiniLM embedding.

Two small logistic regressions (numpy only at inference) read the bundled all-MiniLM-L6-v2 embedding of the
text's opening plus VADER's four scores. They were fitted by ``bench/sentiment_fit.py`` on sentences written
for this project (``plugins/sentiment_data/``, Apache-2.0, like the rest of the project); the weights ship in
``plugins/sentiment_data/model.npz`` (about 15 KB).

The stored sentiment stays a score in [-1, 1]: P(positive) - P(negative). The model is on only with
``FEEDBACKLOOP_ENRICHMENT_MODEL=minilm-lr`` (off by default: one MiniLM pass per item costs tens of
milliseconds on a CPU, against 0.1 ms for VADER and the rules, which intake at 1,000 items/s cannot afford).
When it is off or its weights are missing, this plugin does nothing and the fallback plugins
(``plugins.sentiment``: VADER, ``plugins.kind``: rules; both ``trylast``) fill in what is missing.

Enrichment runs before the item is stored and embedded (core/themes/build.py ``embed_pending`` embeds the
redacted text later), so this plugin embeds the opening itself: one MiniLM pass per item (measured in
bench/sentiment_bench.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core import hookimpl
from core.types import ItemDraft
from plugins.sentiment import SENTIMENT_PREFIX_CHARS

WEIGHTS = Path(__file__).with_name("sentiment_data") / "model.npz"
MODEL_ENV = "FEEDBACKLOOP_ENRICHMENT_MODEL"
MODEL_NAME = "minilm-lr"
DEFAULT_MODEL = "rules"
SENTIMENTS = ("negative", "neutral", "positive")

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class LinearModel:
    """Softmax regression over [embedding, VADER scores * vader_scale]."""

    weights: FloatArray  # (classes, features)
    bias: FloatArray  # (classes,)
    labels: tuple[str, ...]

    def probabilities(self, features: FloatArray) -> FloatArray:
        logits = features @ self.weights.T + self.bias
        logits -= logits.max(axis=-1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=-1, keepdims=True), dtype=np.float32)


@dataclass(frozen=True)
class EnrichmentModel:
    sentiment: LinearModel
    kind: LinearModel
    vader_scale: float
    embedder: str

    def features(self, embeddings: FloatArray, texts: list[str]) -> FloatArray:
        from plugins.sentiment import _analyzer

        scores = []
        for text in texts:
            polarity = _analyzer().polarity_scores(text[:SENTIMENT_PREFIX_CHARS])
            scores.append([polarity["compound"], polarity["pos"], polarity["neg"], polarity["neu"]])
        vader = np.asarray(scores, dtype=np.float32).reshape(len(texts), 4) * self.vader_scale
        return np.hstack([np.asarray(embeddings, dtype=np.float32).reshape(len(texts), -1), vader])

    def predict(self, embeddings: FloatArray, texts: list[str]) -> tuple[FloatArray, FloatArray]:
        """(sentiment probabilities, kind probabilities) for each text, rows in ``SENTIMENTS`` and kind order."""
        features = self.features(embeddings, texts)
        return self.sentiment.probabilities(features), self.kind.probabilities(features)


def load_model(path: Path = WEIGHTS) -> EnrichmentModel | None:
    """The shipped model, or None when its file is missing or unreadable (the fallback plugins then work)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            def linear(prefix: str) -> LinearModel:
                return LinearModel(np.asarray(data[f"{prefix}_weights"], dtype=np.float32),
                                   np.asarray(data[f"{prefix}_bias"], dtype=np.float32),
                                   tuple(str(label) for label in data[f"{prefix}_labels"]))

            return EnrichmentModel(linear("sentiment"), linear("kind"), float(data["vader_scale"]),
                                   str(data["embedder"]))
    except (OSError, KeyError, ValueError):
        return None


@cache
def _model() -> EnrichmentModel | None:
    return load_model()


@cache
def _embedder() -> Any:
    from plugins.minilm_embedder import make_embedder

    return make_embedder(batch_size=32)


def sentiment_score(probabilities: FloatArray) -> float:
    """P(positive) - P(negative): near 0 for neutral texts, in [-1, 1] like VADER's compound."""
    return float(probabilities[SENTIMENTS.index("positive")] - probabilities[SENTIMENTS.index("negative")])


def enabled() -> bool:
    return os.environ.get(MODEL_ENV, DEFAULT_MODEL).strip().lower() == MODEL_NAME


def enrich_texts(texts: list[str], embeddings: FloatArray | None = None
                 ) -> list[tuple[float, str, str]] | None:
    """(sentiment score, sentiment label, kind) per text, or None without a model.

    ``embeddings`` (MiniLM, one row per text) are used when given, else the openings are embedded here.
    """
    model = _model()
    if model is None:
        return None
    openings = [text[:SENTIMENT_PREFIX_CHARS] for text in texts]
    if embeddings is None:
        embeddings = np.asarray(_embedder().embed(openings), dtype=np.float32)
    sentiments, kinds = model.predict(embeddings, openings)
    return [(sentiment_score(s), SENTIMENTS[int(np.argmax(s))], model.kind.labels[int(np.argmax(k))])
            for s, k in zip(sentiments, kinds, strict=True)]


@hookimpl
def enrich_item(item: ItemDraft) -> None:
    if (item.sentiment is not None and item.kind is not None) or not enabled():
        return
    result = enrich_texts([item.text])
    if result is None:
        return  # no weights: plugins.sentiment and plugins.kind (trylast) fill in
    score, _, kind = result[0]
    if item.sentiment is None:
        item.sentiment = score
    if item.kind is None:
        item.kind = kind
