"""The MiniLM sentiment and kind model (plugins/sentiment_model.py): re-scoring after embedding, and its
VADER/rules fallback at intake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from core import hookimpl
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import FeedbackItem
from core.plugin_manager import make_plugin_manager
from core.settings import Settings
from core.themes.build import embed_pending
from core.types import ItemDraft
from plugins import sentiment_model
from plugins.kind import classify
from plugins.sentiment import sentiment_of
from tests.support.loops import HashEmbedder, make_loop

TEXTS = ["Thanks, the refund came through quickly. Great service!",
         "Checkout is broken again, I was charged twice.",
         "How do I change the billing date on my account?",
         "It would be nice to have an option to export to PDF."]


def minilm_loop(url: str, enrichment_model: str = "minilm-lr") -> FeedbackLoop:
    """A test loop that embeds with the bundled MiniLM (as a deployment does), not the fake embedder."""
    base = make_loop(url, enrichment_model=enrichment_model)
    loop = FeedbackLoop(base.settings, pm=base.pm, embedder=sentiment_model._embedder())
    base.close()
    return loop


@pytest.fixture
def model_loop(sqlite_url: str) -> Iterator[FeedbackLoop]:
    loop = minilm_loop(sqlite_url)
    yield loop
    loop.close()


def stored(loop: FeedbackLoop) -> dict[str, tuple[float | None, str | None]]:
    with loop.session() as session:
        return {item.text_original: (item.sentiment, item.kind) for item in session.scalars(select(FeedbackItem))}


def intake_then_embed(loop: FeedbackLoop, drafts: list[ItemDraft]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What intake stored, and what is stored once the worker has embedded the items."""
    with loop.session() as session:
        ingest(loop, session, drafts)
    at_intake = stored(loop)
    with loop.session() as session:
        assert embed_pending(loop, session) == len(drafts)
    return at_intake, stored(loop)


def test_the_shipped_weights_load() -> None:
    model = sentiment_model.load_model()
    assert model is not None and model.embedder == "minilm" and model.dims == 384
    assert model.sentiment.labels == sentiment_model.SENTIMENTS
    assert set(model.kind.labels) == {"complaint", "idea", "praise", "question"}
    assert model.sentiment.layers[0][0].shape[1] == 384 + 4 and model.kind.layers[-1][0].shape[0] == 4
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


def test_intake_scores_with_the_rules_and_the_worker_rescores_from_the_embedding(model_loop: FeedbackLoop) -> None:
    at_intake, embedded = intake_then_embed(model_loop, [ItemDraft(text=text) for text in TEXTS])
    for text in TEXTS:  # intake: VADER and the rules, no embedding
        assert at_intake[text] == (pytest.approx(sentiment_of(text)), classify(text, sentiment_of(text)))
    vectors = np.asarray(sentiment_model._embedder().embed(TEXTS), dtype=np.float32)
    expected = sentiment_model.enrich_texts(TEXTS, vectors)
    assert expected is not None
    for text, (score, _, kind) in zip(TEXTS, expected, strict=True):
        assert embedded[text] == (pytest.approx(score, abs=1e-4), kind)
    assert [embedded[text][1] for text in TEXTS] == ["praise", "complaint", "question", "idea"]
    praise, complaint = embedded[TEXTS[0]][0], embedded[TEXTS[1]][0]
    assert praise is not None and complaint is not None and praise > 0.2 and complaint < -0.2


class KindFromTheSource:
    """An enrichment plugin that knows an item's kind (say, from the forum category it was posted in)."""

    @hookimpl
    def enrich_item(self, item: ItemDraft) -> None:
        if item.text.startswith("Idea:"):
            item.kind, item.sentiment = "idea", 0.5


def test_values_the_fallback_did_not_make_are_kept(model_loop: FeedbackLoop) -> None:
    model_loop.pm.register(KindFromTheSource())
    text = "Idea: the app crashes every time I open the export, terrible."
    _, embedded = intake_then_embed(model_loop, [ItemDraft(text=text), ItemDraft(text=TEXTS[1])])
    assert embedded[text] == (0.5, "idea")
    assert embedded[TEXTS[1]][0] != pytest.approx(sentiment_of(TEXTS[1]))  # the other one is re-scored


def test_rules_switch_the_rescoring_off(sqlite_url: str) -> None:
    loop = minilm_loop(sqlite_url, enrichment_model="rules")
    try:
        at_intake, embedded = intake_then_embed(loop, [ItemDraft(text=text) for text in TEXTS])
    finally:
        loop.close()
    assert embedded == at_intake
    assert Settings().enrichment_model == "rules"  # tests/conftest.py sets it for every test
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("FEEDBACKLOOP_ENRICHMENT_MODEL")
        assert Settings().enrichment_model == "minilm-lr"  # the default


def test_other_embedders_and_missing_weights_leave_the_intake_scores(sqlite_url: str, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    hashed = make_loop(sqlite_url, enrichment_model="minilm-lr")
    try:
        assert isinstance(hashed.embedder, HashEmbedder)
        at_intake, embedded = intake_then_embed(hashed, [ItemDraft(text=text) for text in TEXTS])
    finally:
        hashed.close()
    assert embedded == at_intake
    assert sentiment_model.load_model(tmp_path / "missing.npz") is None
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    assert sentiment_model.load_model(tmp_path / "broken.npz") is None
    monkeypatch.setattr(sentiment_model, "_model", lambda: None)
    item = ItemDraft(text=TEXTS[1], sentiment=-0.1, kind="complaint")
    vectors = np.zeros((1, 384), dtype=np.float32)
    make_plugin_manager(load_installed=False).hook.enrich_embedded(
        items=[item], embeddings=vectors, embedder="minilm", settings=Settings(enrichment_model="minilm-lr"))
    assert (item.sentiment, item.kind) == (-0.1, "complaint")


def test_given_embeddings_are_used() -> None:
    texts = ["Great job on the update", "Where is the export button?"]
    embedded = sentiment_model.enrich_texts(texts)
    vectors = np.asarray(sentiment_model._embedder().embed(texts), dtype=np.float32)
    given = sentiment_model.enrich_texts(texts, vectors)
    assert embedded is not None and given is not None
    assert [label for _, label, _ in given] == [label for _, label, _ in embedded]
