"""Built-in re-scoring ``minilm-lr``: sentiment and kind from the MiniLM embedding the worker computes anyway.

Intake scores every item with VADER and the rules (plugins/sentiment.py, plugins/kind.py: fast, it runs on
every item). Once the worker has embedded items (core/themes/build.py ``embed_pending``), this plugin's
``enrich_embedded`` re-scores them from those embeddings plus VADER's four scores: two small classifiers
(numpy only at inference) fitted by ``bench/sentiment_fit.py`` on sentences written for this project
(``plugins/sentiment_data/``, Apache-2.0, like the rest of the project); the weights ship in
``plugins/sentiment_data/model.npz``. No text is embedded a second time.

Only the values the fallback made are replaced: a sentiment equal to VADER's score of the text and a kind
equal to the rules' answer. A value set by another plugin (or anything else) is kept. The stored sentiment
stays a score in [-1, 1]: P(positive) - P(negative). ``FEEDBACKLOOP_ENRICHMENT_MODEL=rules`` switches the
re-scoring off; it also does nothing when the weights are missing or the embedder is not the one they were
fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core import hookimpl
from core.settings import Settings
from core.types import ItemDraft
from plugins.kind import KIND_PREFIX_CHARS, classify
from plugins.sentiment import SENTIMENT_PREFIX_CHARS

WEIGHTS = Path(__file__).with_name("sentiment_data") / "model.npz"
MODEL_NAME = "minilm-lr"
SENTIMENTS = ("negative", "neutral", "positive")

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Classifier:
    """Dense layers (ReLU between them) and a softmax over ``labels``; one layer is a logistic regression."""

    layers: tuple[tuple[FloatArray, FloatArray], ...]  # (weights (out, in), bias (out,)) per layer
    labels: tuple[str, ...]

    def probabilities(self, features: FloatArray) -> FloatArray:
        activations = features
        for index, (weights, bias) in enumerate(self.layers):
            activations = activations @ weights.T + bias
            if index < len(self.layers) - 1:
                activations = np.maximum(activations, 0.0)
        activations = activations - activations.max(axis=-1, keepdims=True)
        exp = np.exp(activations)
        return np.asarray(exp / exp.sum(axis=-1, keepdims=True), dtype=np.float32)


def vader_scores(texts: list[str]) -> FloatArray:
    """VADER's (compound, pos, neg, neu) for the opening of each text, one row per text."""
    from plugins.sentiment import _analyzer

    rows = []
    for text in texts:
        polarity = _analyzer().polarity_scores(text[:SENTIMENT_PREFIX_CHARS])
        rows.append([polarity["compound"], polarity["pos"], polarity["neg"], polarity["neu"]])
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), 4)


@dataclass(frozen=True)
class EnrichmentModel:
    sentiment: Classifier
    kind: Classifier
    vader_scale: float
    embedder: str

    @property
    def dims(self) -> int:
        return int(self.sentiment.layers[0][0].shape[1]) - 4

    def predict(self, embeddings: FloatArray, vader: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(sentiment probabilities, kind probabilities) per row, columns in each classifier's label order."""
        features = np.hstack([np.asarray(embeddings, dtype=np.float32).reshape(len(vader), -1),
                              vader * self.vader_scale])
        return self.sentiment.probabilities(features), self.kind.probabilities(features)


def load_model(path: Path = WEIGHTS) -> EnrichmentModel | None:
    """The shipped model, or None when its file is missing or unreadable (the intake scores then stay)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            def classifier(prefix: str) -> Classifier:
                layers = tuple((np.asarray(data[f"{prefix}_weights{i}"], dtype=np.float32),
                                np.asarray(data[f"{prefix}_bias{i}"], dtype=np.float32))
                               for i in range(int(data[f"{prefix}_layers"])))
                return Classifier(layers, tuple(str(label) for label in data[f"{prefix}_labels"]))

            return EnrichmentModel(classifier("sentiment"), classifier("kind"), float(data["vader_scale"]),
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


def enrich_texts(texts: list[str], embeddings: FloatArray | None = None,
                 vader: FloatArray | None = None) -> list[tuple[float, str, str]] | None:
    """(sentiment score, sentiment label, kind) per text, or None without a model.

    ``embeddings`` (MiniLM, one row per text) are used when given, else the openings are embedded here.
    """
    model = _model()
    if model is None:
        return None
    if embeddings is None:
        embeddings = np.asarray(_embedder().embed([text[:SENTIMENT_PREFIX_CHARS] for text in texts]),
                                dtype=np.float32)
    sentiments, kinds = model.predict(embeddings, vader_scores(texts) if vader is None else vader)
    return [(sentiment_score(s), SENTIMENTS[int(np.argmax(s))], model.kind.labels[int(np.argmax(k))])
            for s, k in zip(sentiments, kinds, strict=True)]


def made_by_fallback(item: ItemDraft, compound: float) -> tuple[bool, bool]:
    """Whether the item's (sentiment, kind) are what VADER and the rules give its text, i.e. were made by them."""
    sentiment_fallback = item.sentiment is None or abs(item.sentiment - compound) < 1e-6
    rules_sentiment = compound if item.sentiment is None else item.sentiment
    kind_fallback = item.kind is None or item.kind == classify(item.text[:KIND_PREFIX_CHARS], rules_sentiment)
    return sentiment_fallback, kind_fallback


@hookimpl
def enrich_embedded(items: list[ItemDraft], embeddings: FloatArray, embedder: str, settings: Settings) -> None:
    if settings.enrichment_model != MODEL_NAME or not items:
        return
    model = _model()
    if model is None or embedder != model.embedder or embeddings.shape[-1] != model.dims:
        return  # no weights, or vectors of another embedder: the intake scores (VADER, rules) stay
    vader = vader_scores([item.text for item in items])
    results = enrich_texts([item.text for item in items], embeddings, vader)
    assert results is not None
    for item, compound, (score, _, kind) in zip(items, vader[:, 0], results, strict=True):
        replace_sentiment, replace_kind = made_by_fallback(item, float(compound))
        if replace_sentiment:
            item.sentiment = score
        if replace_kind:
            item.kind = kind
