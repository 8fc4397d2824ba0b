"""Refit plugins/sentiment_data/model.npz from the shipped training sentences (plugins/sentiment_data/*.txt).

    PYTHONPATH=. HF_HUB_OFFLINE=1 python -m bench.sentiment_fit [--candidate NAME]

Only sentences written for this project are fitted on (Apache-2.0); no public corpus is. Each candidate in
CANDIDATES is fitted on all of them and measured on TweetEval's validation split (../shared/data/sentiment/
tweeteval_val.csv, 2,000 tweets; measured only, never fitted on; the test split is never read here); the best
one is saved unless it is within one standard error of the incumbent (``choose``). Without that file the
candidates are compared on a held-out fifth of our sentences instead (split by a hash of the text; a template
and all its expansions fall on the same side). Embeddings are cached in bench/.cache.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugins.sentiment_model import SENTIMENTS, WEIGHTS, Classifier, vader_scores

DATA = Path(__file__).resolve().parent.parent / "plugins" / "sentiment_data"
CACHE = Path(__file__).resolve().parent / ".cache"
TWEETEVAL_VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "sentiment" / "tweeteval_val.csv"
LABELS = {"neg": "negative", "neu": "neutral", "pos": "positive"}
KINDS = ("complaint", "idea", "praise", "question")
# Hand-written sentences count more than the ones expanded from templates (26 topics each).
HAND_WEIGHT, TEMPLATE_WEIGHT = 2.0, 0.3
HELD_OUT_SHARE = 0.2


@dataclass(frozen=True)
class Row:
    text: str
    sentiment: str
    kind: str  # "-" when the sentence is no piece of feedback
    weight: float
    group: str  # rows of one group (a template's expansions) are held out together


@dataclass(frozen=True)
class Candidate:
    """One way to fit the sentiment classifier (the kind classifier is always the LR below)."""

    hidden: int = 0  # 0: logistic regression, else one ReLU layer of this width
    c: float = 0.5  # inverse regularisation (LR); the MLP's alpha is 1 / (c * rows)
    balanced: bool = False  # weight the classes to equal total weight
    vader_scale: float = 1.0  # VADER's four scores are multiplied by this: a larger one is regularised less
    neutral_share: float | None = None  # reweight: neutral gets this share of the weight, the others equal shares
    equal_priors: bool = False  # divide the probabilities by the training class prior (log prior off the bias)
    extra: tuple[str, ...] = ()  # more training rows, by name: see extra_rows


CANDIDATES = {
    "lr-c0.5": Candidate(),
    "lr-c0.25": Candidate(c=0.25),
    "lr-c1": Candidate(c=1.0),
    "lr-c0.5-balanced": Candidate(balanced=True),
    "mlp-32": Candidate(hidden=32, c=0.5),
    "lr-c0.5-vader3": Candidate(vader_scale=3.0),
    "lr-c0.5-vader10": Candidate(vader_scale=10.0),
    "lr-c0.5-neutral-half": Candidate(neutral_share=0.5),
    "lr-c0.5-equal-priors": Candidate(equal_priors=True),
    "lr-c0.5-posts": Candidate(extra=("posts",)),
    "lr-c0.5-vader-lexicon": Candidate(extra=("vader-lexicon",)),
    "lr-c0.5-user-prefix": Candidate(extra=("user-prefix",)),
}
# Words of VADER's lexicon (vaderSentiment, MIT) whose mean valence is at least this far from 0, as one-word rows.
LEXICON_VALENCE, LEXICON_WEIGHT = 1.0, 0.1


def _lines(name: str) -> list[str]:
    return [line for line in (DATA / name).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def training_rows() -> list[Row]:
    """Rows of sentences.txt (label|kind|text), general.txt and everyday.txt (label|text) and templates.txt
    (expanded)."""
    rows = []
    for line in _lines("sentences.txt"):
        label, kind, text = line.split("|", 2)
        rows.append(Row(text, LABELS[label], kind, HAND_WEIGHT, text))
    for name in ("general.txt", "everyday.txt"):
        for line in _lines(name):
            label, text = line.split("|", 1)
            rows.append(Row(text, LABELS[label], "-", HAND_WEIGHT, text))
    topics: list[str] = []
    for line in _lines("templates.txt"):
        if line.startswith("@topics|"):
            topics = line.split("|")[1:]
            continue
        label, kind, template = line.split("|", 2)
        for topic in topics:
            text = template.replace("{t}", topic)
            rows.append(Row(text[0].upper() + text[1:], LABELS[label], kind, TEMPLATE_WEIGHT, template))
    return rows


def extra_rows(name: str, rows: list[Row]) -> list[Row]:
    """Rows a candidate adds to ``rows``: "posts" (posts.txt, hand-written social posts), "vader-lexicon" (the
    words of VADER's lexicon with |mean valence| >= LEXICON_VALENCE, labelled by its sign) and "user-prefix"
    (every hand-written row again, opened by "@user " as tweets are). None carries a kind."""
    if name == "posts":
        return [Row(text, LABELS[label], "-", HAND_WEIGHT, text)
                for label, text in (line.split("|", 1) for line in _lines("posts.txt"))]
    if name == "user-prefix":
        return [Row("@user " + row.text, row.sentiment, "-", row.weight, row.group) for row in rows
                if row.weight == HAND_WEIGHT]
    import vaderSentiment

    lexicon = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt").read_text(encoding="utf-8")
    valences = ((token, float(mean)) for token, mean, *_ in (line.split("\t") for line in lexicon.splitlines()))
    return [Row(token, "positive" if mean > 0 else "negative", "-", LEXICON_WEIGHT, token)
            for token, mean in valences if abs(mean) >= LEXICON_VALENCE]


def with_extra(candidate: Candidate, rows: list[Row], features: np.ndarray) -> tuple[list[Row], np.ndarray]:
    """``rows`` and their features, followed by the candidate's extra rows and theirs."""
    added = [row for name in candidate.extra for row in extra_rows(name, rows)]
    if not added:
        return rows, features
    return rows + added, np.vstack([features, features_of([row.text for row in added], "train")])


def held_out(row: Row) -> bool:
    return int(hashlib.sha256(row.group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


def embed_cached(texts: list[str], tag: str) -> np.ndarray:
    """MiniLM embeddings of ``texts`` (the plugin's embedder), cached per text so that new sentences alone are
    embedded."""
    from plugins.sentiment_model import _embedder

    path = CACHE / f"{tag}-by-text.npz"
    cached: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path) as data:
            cached = dict(zip((str(key) for key in data["keys"]), data["vectors"], strict=True))
    keys = [hashlib.sha256(text.encode()).hexdigest()[:24] for text in texts]
    missing = sorted({key: text for key, text in zip(keys, texts, strict=True) if key not in cached}.items())
    if missing:
        vectors = np.asarray(_embedder().embed([text for _, text in missing]), dtype=np.float32)
        cached.update(zip((key for key, _ in missing), vectors, strict=True))
        CACHE.mkdir(exist_ok=True)
        np.savez(path, keys=np.array(list(cached)), vectors=np.vstack(list(cached.values())))
    return np.vstack([cached[key] for key in keys]).astype(np.float32)


def features_of(texts: list[str], tag: str) -> np.ndarray:
    return np.hstack([embed_cached(texts, tag), vader_scores(texts)])


def _layers(model: Any, vader_scale: float = 1.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weights (out, in), bias) per layer, for a fitted LogisticRegression or MLPClassifier; the candidate's
    VADER scale is folded into the first layer, so the shipped model reads unscaled features."""
    if hasattr(model, "coefs_"):
        layers = [(w.T.astype(np.float32), b.astype(np.float32))
                  for w, b in zip(model.coefs_, model.intercepts_, strict=True)]
    else:
        layers = [(model.coef_.astype(np.float32), model.intercept_.astype(np.float32))]
    layers[0][0][:, -4:] *= vader_scale
    return layers


def scaled(features: np.ndarray, candidate: Candidate) -> np.ndarray:
    """The features with VADER's four scores (the last columns) multiplied by the candidate's scale."""
    return np.hstack([features[:, :-4], features[:, -4:] * candidate.vader_scale])


def fit_classifier(candidate: Candidate, features: np.ndarray, labels: list[int], weights: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    features = scaled(features, candidate)
    if candidate.balanced or candidate.neutral_share is not None:
        counts = {label: weights[np.array(labels) == label].sum() for label in set(labels)}
        neutral = SENTIMENTS.index("neutral")
        share = {label: 1 / len(counts) for label in counts}
        if candidate.neutral_share is not None:
            share = {label: candidate.neutral_share if label == neutral else
                     (1 - candidate.neutral_share) / (len(counts) - 1) for label in counts}
        weights = weights * np.array([share[label] * sum(counts.values()) / counts[label] for label in labels])
    if candidate.hidden:
        mlp = MLPClassifier(hidden_layer_sizes=(candidate.hidden,), alpha=1.0 / (candidate.c * len(labels)),
                            max_iter=600, random_state=0)
        return mlp.fit(features, labels, sample_weight=weights)
    model = LogisticRegression(C=candidate.c, max_iter=3000).fit(features, labels, sample_weight=weights)
    if candidate.equal_priors:  # the mix of our sentences is arbitrary: P(class | text) / P(class), renormalised
        prior = np.array([weights[np.array(labels) == label].sum() for label in model.classes_])
        model.intercept_ = model.intercept_ - np.log(prior / prior.sum())
    return model


def select(rows: list[Row], features: np.ndarray) -> dict[str, float]:
    """Held-out sentiment accuracy (weighted like training) of each candidate, fitted on the other rows."""
    test = np.array([held_out(row) for row in rows])
    labels = np.array([SENTIMENTS.index(row.sentiment) for row in rows])
    weights = np.array([row.weight for row in rows])
    scores = {}
    for name, candidate in CANDIDATES.items():
        kept = [row for row, out in zip(rows, test, strict=True) if not out]
        fitted_rows, fitted_features = with_extra(candidate, kept, features[~test])
        model = fit_classifier(candidate, fitted_features, [SENTIMENTS.index(row.sentiment) for row in fitted_rows],
                               np.array([row.weight for row in fitted_rows]))
        right = model.predict(scaled(features[test], candidate)) == labels[test]
        scores[name] = float(np.sum(right * weights[test]) / np.sum(weights[test]))
    return scores


def validation_set(path: Path = TWEETEVAL_VAL) -> tuple[np.ndarray, np.ndarray] | None:
    """(features, label index) of TweetEval's validation tweets, or None where the file is absent."""
    from plugins.sentiment import SENTIMENT_PREFIX_CHARS

    if not path.exists():
        return None
    with path.open(encoding="utf-8") as f:
        tweets = list(csv.DictReader(f))
    texts = [tweet["text"] for tweet in tweets]
    features = np.hstack([embed_cached([text[:SENTIMENT_PREFIX_CHARS] for text in texts], "tweeteval-val"),
                          vader_scores(texts)])
    return features, np.array([SENTIMENTS.index(tweet["sentiment"]) for tweet in tweets])


def validate(rows: list[Row], features: np.ndarray, validation: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Accuracy on the validation tweets of each candidate, fitted on every row as the shipped one is."""
    val_features, val_labels = validation
    return {name: float(np.mean(fit_sentiment(name, rows, features).predict(scaled(val_features, candidate))
                                == val_labels))
            for name, candidate in CANDIDATES.items()}


def choose(scores: dict[str, float], measured_rows: int) -> str:
    """The incumbent (the first candidate) unless another beats it on the measured rows by more than one
    standard error of that accuracy: smaller differences are noise on a few hundred or thousand texts."""
    incumbent = next(iter(CANDIDATES))
    best = max(scores, key=lambda key: scores[key])
    error = float(np.sqrt(scores[best] * (1 - scores[best]) / max(1, measured_rows)))
    return best if scores[best] - scores[incumbent] > error else incumbent


def compare(rows: list[Row], features: np.ndarray) -> tuple[str, dict[str, float], dict[str, float]]:
    """(the candidate chosen, held-out accuracy on our sentences, accuracy on the validation tweets) where the
    choice is made on the validation tweets, or on our held-out sentences when that file is absent ({})."""
    scores = select(rows, features)
    validation = validation_set()
    if validation is None:
        return choose(scores, sum(held_out(row) for row in rows)), scores, {}
    validated = validate(rows, features, validation)
    return choose(validated, len(validation[1])), scores, validated


def fit_sentiment(name: str, rows: list[Row], features: np.ndarray) -> Any:
    """Candidate ``name`` fitted on every row (and its extra rows)."""
    rows, features = with_extra(CANDIDATES[name], rows, features)
    return fit_classifier(CANDIDATES[name], features, [SENTIMENTS.index(row.sentiment) for row in rows],
                          np.array([row.weight for row in rows]))


def candidate_classifiers() -> dict[str, Classifier]:
    """Every candidate, fitted on every row as the shipped one is (for bench/sentiment_bench.py)."""
    rows = training_rows()
    features = features_of([row.text for row in rows], "train")
    return {name: Classifier(tuple(_layers(fit_sentiment(name, rows, features), CANDIDATES[name].vader_scale)),
                               SENTIMENTS)
            for name in CANDIDATES}


def fit(path: Path = WEIGHTS, name: str | None = None) -> dict[str, Any]:
    rows = training_rows()
    features = features_of([row.text for row in rows], "train")
    chosen, scores, validated = compare(rows, features)
    name = name or chosen
    weights = np.array([row.weight for row in rows])
    sentiment = fit_sentiment(name, rows, features)
    kinded = [i for i, row in enumerate(rows) if row.kind != "-"]
    kind = fit_classifier(Candidate(), features[kinded], [KINDS.index(rows[i].kind) for i in kinded],
                          weights[kinded])
    # The VADER scale is folded into the weights (_layers): the shipped model reads unscaled scores.
    arrays: dict[str, Any] = {"vader_scale": np.float32(1.0), "embedder": np.array("minilm"),
                              "sentiment_labels": np.array(SENTIMENTS), "kind_labels": np.array(KINDS)}
    for prefix, model, scale in (("sentiment", sentiment, CANDIDATES[name].vader_scale), ("kind", kind, 1.0)):
        layers = _layers(model, scale)
        arrays[f"{prefix}_layers"] = np.int64(len(layers))
        for i, (w, b) in enumerate(layers):
            arrays[f"{prefix}_weights{i}"], arrays[f"{prefix}_bias{i}"] = w, b
    np.savez_compressed(path, **arrays)
    return {"sentences": len(rows), "with_kind": len(kinded), "chosen": name,
            "held_out": {key: round(value, 3) for key, value in scores.items()},
            "validation": {key: round(value, 3) for key, value in validated.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), help="fit this one instead of the best")
    args = parser.parse_args()
    print(fit(name=args.candidate), "->", WEIGHTS)
