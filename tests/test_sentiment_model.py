"""The MiniLM sentiment and kind model (plugins/sentiment_model.py) and its VADER/rules fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.plugin_manager import make_plugin_manager
from core.settings import Settings
from core.types import ItemDraft
from plugins import sentiment_model
from plugins.kind import classify
from plugins.sentiment import sentiment_of


@pytest.fixture
def model_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sentiment_model.MODEL_ENV, sentiment_model.MODEL_NAME)


def enrich(text: str) -> ItemDraft:
    item = ItemDraft(text=text)
    make_plugin_manager(load_installed=False).hook.enrich_item(item=item, settings=Settings())
    return item


def test_the_shipped_weights_load() -> None:
    model = sentiment_model.load_model()
    assert model is not None and model.embedder == "minilm"
    assert model.sentiment.labels == sentiment_model.SENTIMENTS
    assert set(model.kind.labels) == {"complaint", "idea", "praise", "question"}
    assert model.sentiment.weights.shape == (3, 384 + 4) and model.kind.weights.shape == (4, 384 + 4)
    assert sentiment_model.WEIGHTS.stat().st_size < 1_000_000


@pytest.mark.parametrize(("text", "sentiment", "kind"), [
    ("Love the new dashboard, thank you so much!", "positive", "praise"),
    ("The app crashes every time I open it and support never replies.", "negative", "complaint"),
    ("How do I change the billing date on my account?", "neutral", "question"),
    ("It would be nice to have an option to export to PDF.", "neutral", "idea"),
])
def test_sensible_labels(text: str, sentiment: str, kind: str) -> None:
    result = sentiment_model.enrich_texts([text])
    assert result is not None
    score, label, predicted_kind = result[0]
    assert (label, predicted_kind) == (sentiment, kind)
    assert -1.0 <= score <= 1.0 and (score > 0.2 if sentiment == "positive" else True)


def test_the_enrichment_hook_uses_the_model(model_on: None) -> None:
    item = enrich("Thanks, the refund came through quickly. Great service!")
    assert item.kind == "praise" and item.sentiment is not None and item.sentiment > 0.2
    expected = sentiment_model.enrich_texts([item.text])
    assert expected is not None and item.sentiment == pytest.approx(expected[0][0])
    broken = enrich("Checkout is broken again, I was charged twice.")
    assert broken.kind == "complaint" and broken.sentiment is not None and broken.sentiment < 0


def test_a_value_already_there_is_kept(model_on: None) -> None:
    item = ItemDraft(text="The app crashes all the time.", kind="idea")
    make_plugin_manager(load_installed=False).hook.enrich_item(item=item, settings=Settings())
    assert item.kind == "idea" and item.sentiment is not None and item.sentiment < 0


def test_the_fallback_works_without_weights(model_on: None, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert sentiment_model.load_model(tmp_path / "missing.npz") is None
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    assert sentiment_model.load_model(tmp_path / "broken.npz") is None
    monkeypatch.setattr(sentiment_model, "_model", lambda: None)
    text = "The app crashes every time, terrible."
    item = enrich(text)
    assert item.sentiment == pytest.approx(sentiment_of(text))
    assert item.kind == classify(text, item.sentiment)


def test_rules_by_default_or_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sentiment_model.MODEL_ENV)
    assert not sentiment_model.enabled()
    monkeypatch.setenv(sentiment_model.MODEL_ENV, "rules")
    text = "Would love a dark mode!"
    item = enrich(text)
    assert item.sentiment == pytest.approx(sentiment_of(text)) and item.kind == classify(text)


def test_given_embeddings_are_used() -> None:
    texts = ["Great job on the update", "Where is the export button?"]
    embedded = sentiment_model.enrich_texts(texts)
    vectors = np.asarray(sentiment_model._embedder().embed(texts), dtype=np.float32)
    given = sentiment_model.enrich_texts(texts, vectors)
    assert embedded is not None and given is not None
    assert [label for _, label, _ in given] == [label for _, label, _ in embedded]
