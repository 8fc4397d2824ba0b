"""Area names say what an area's themes share and are no theme's name; names never repeat another's content
words; a theme that emerges between re-clusterings is named with the loop's embedder, unlike every theme."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from sqlalchemy import select

from clustering.area_names import area_names
from clustering.labels import ThemeLabeller
from clustering.names import content_key, theme_names, unique_name
from clustering.pipeline import ThemePipeline
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import Theme
from core.themes.incremental import assign_new_items
from core.types import INACTIVE_STATUSES, ItemDraft
from tests.test_names import LABELS, TEXTS, BagOfWords
from tests.test_review import seed

# Two areas of two themes each: every card theme says "card", every transfer theme "transfer".
AREA_TEXTS = (
    ["my new card has not arrived yet", "when will my new card arrive", "new card still not arrived",
     "card has not arrived after two weeks", "tracking for my new card delivery"]
    + ["I forgot the pin of my card", "how do I change my card pin", "card pin is blocked",
       "reset the pin on my card", "where do I find my card pin"]
    + ["my bank transfer failed", "transfer to my friend failed again", "why did the transfer fail",
       "transfer failed with an error", "failed transfer to my landlord"]
    + ["how long does a bank transfer take", "transfer is taking too long", "when will my transfer arrive",
       "transfer still pending after days", "transfer takes so long"])
AREA_LABELS = np.repeat(np.arange(4), 5)
AREA_OF_THEME = {0: 0, 1: 0, 2: 1, 3: 1}


def test_a_name_is_distinct_by_its_content_words_in_any_order() -> None:
    assert content_key("Transfer failed") == content_key("failed transfers") == content_key("The transfer has failed")
    assert content_key("Transfer failed") != content_key("Transfer time")
    assert unique_name("Failed transfer", {content_key("Transfer failed")}, 7) == "Failed transfer (7)"
    assert unique_name("Transfer time", {content_key("Transfer failed")}, 7) == "Transfer time"


def test_theme_names_avoid_the_names_already_taken() -> None:
    assert theme_names(TEXTS, LABELS)[0] == "Open account"
    names = theme_names(TEXTS, LABELS, taken_names=["Account opening"])
    assert content_key(names[0]) != content_key("Open account") and names[1] == "Reset passcode"


@pytest.mark.parametrize("with_embedder", [False, True])
def test_area_names_say_what_their_themes_share_and_are_no_themes_name(with_embedder: bool) -> None:
    embedder = BagOfWords()
    vectors = embedder.embed(AREA_TEXTS)
    titles = theme_names(AREA_TEXTS, AREA_LABELS, vectors, embedder)
    names = area_names(AREA_TEXTS, AREA_LABELS, AREA_OF_THEME, list(titles.values()),
                       *((vectors, embedder) if with_embedder else (None, None)))
    assert set(names) == {0, 1}
    assert "card" in names[0].lower() and "transfer" in names[1].lower()
    keys = {content_key(title) for title in titles.values()}
    assert all(content_key(name) not in keys for name in names.values())
    assert content_key(names[0]) != content_key(names[1])
    assert all(2 <= len(name.split()) <= 6 for name in names.values())
    assert area_names(AREA_TEXTS, AREA_LABELS, AREA_OF_THEME, list(titles.values()),
                      *((vectors, embedder) if with_embedder else (None, None))) == names  # deterministic


def test_an_area_of_one_theme_is_not_named_after_it() -> None:
    titles = theme_names(AREA_TEXTS, AREA_LABELS)
    names = area_names(AREA_TEXTS, AREA_LABELS, {0: 0, 1: 1, 2: 1, 3: 1}, list(titles.values()))
    assert content_key(names[0]) != content_key(titles[0]) and names[0] != names[1]


class FixedThemes:
    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        return AREA_LABELS.copy()


class FixedAreas:
    area_of_theme_: dict[int, int]

    def fit(self, X: np.ndarray, y: np.ndarray) -> FixedAreas:
        self.area_of_theme_ = dict(AREA_OF_THEME)
        return self


def test_the_pipeline_names_areas_apart_from_their_themes_keywords_beside() -> None:
    embedder = BagOfWords()
    result = ThemePipeline(FixedThemes(), ThemeLabeller(embedder=embedder), FixedAreas()).run(
        AREA_TEXTS, embedder.embed(AREA_TEXTS))
    theme_keys = {content_key(info.title) for info in result.themes.values()}
    assert set(result.areas) == {0, 1}
    assert all(content_key(info.title) not in theme_keys and info.keywords for info in result.areas.values())


class RecordingEmbedder:
    """The test loop's embedder, every batch it is asked for recorded."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "hash")
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str], progress: object = None) -> np.ndarray:
        self.calls.append(list(texts))
        return np.asarray(self.inner.embed(texts), dtype=np.float32)  # type: ignore[attr-defined]


def test_a_theme_that_emerges_is_named_with_the_embedder_and_unlike_every_theme(
        loop: FeedbackLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(loop)
    recording = RecordingEmbedder(loop.embedder)
    monkeypatch.setattr(loop, "_embedder", recording)  # the loop's own embedder, its calls recorded
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=f"invoice pdf download export accounting csv ticket{i}c ref{i}z",
                                         external_id=f"inv-{i}") for i in range(7)])
    with loop.session() as session:
        assert assign_new_items(loop, session).new_themes == 1
        labels = session.scalars(select(Theme.label).where(Theme.status.not_in(INACTIVE_STATUSES))).all()
    assert len({content_key(label) for label in labels}) == len(labels)
    # One batch for the items, then one small batch of the new theme's candidate names (not item texts).
    assert len(recording.calls) == 2 and 0 < len(recording.calls[1]) <= 30
    assert all(len(phrase.split()) <= 6 for phrase in recording.calls[1])
