"""Theme names ranked with an embedder: candidates embedded in one batch, closeness to the centroid decides."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pytest

import clustering.names as names_module
from clustering.labels import ThemeLabeller
from clustering.names import theme_names

TEXTS = ["how old do I have to be to open an account", "what is the minimum age to open an account",
         "minimum age for opening an account", "can I open an account for my child", "is there a minimum age",
         "I forgot my passcode", "reset my passcode please", "passcode forgotten, how do I reset it",
         "how do I reset my passcode", "I can not remember my passcode"]
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])


class BagOfWords:
    """A stand-in embedder: each word hashed into one of 64 dimensions, rows of length one; calls recorded."""

    name = "bag-of-words"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                vectors[row, sum(map(ord, word)) % 64] += 1
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def test_without_an_embedder_names_follow_the_f_beta_order() -> None:
    assert theme_names(TEXTS, LABELS) == {0: "Open account", 1: "Reset passcode"}


def test_an_embedder_ranks_candidates_by_closeness_to_the_centroid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names_module, "CONTENT_WORD_COST", 0.0)
    embedder = BagOfWords()
    items = embedder.embed(TEXTS)
    names = theme_names(TEXTS, LABELS, items, embedder)
    # "Open account" is what sets the theme apart most precisely; the age is what all its items ask about
    assert names == {0: "Minimum age for opening account", 1: "Reset passcode"}
    phrases = embedder.calls[1]
    assert len(embedder.calls) == 2 and len(phrases) == len(set(phrases)) and "open account" in phrases
    assert theme_names(TEXTS, LABELS, items, embedder) == names  # deterministic


def test_embeddings_without_an_embedder_change_nothing() -> None:
    items = BagOfWords().embed(TEXTS)
    assert theme_names(TEXTS, LABELS, items) == theme_names(TEXTS, LABELS)


def test_a_phrase_of_many_content_words_pays_for_each_beyond_three() -> None:
    embedder = BagOfWords()
    # "minimum age for opening account" (four content words) is closest, but not by more than its cost
    assert theme_names(TEXTS, LABELS, embedder.embed(TEXTS), embedder)[0] == "Open account"


def test_the_labeller_passes_its_embedder_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(names_module, "CONTENT_WORD_COST", 0.0)
    embedder = BagOfWords()
    items = embedder.embed(TEXTS)
    titles = {t: label.title for t, label in ThemeLabeller(embedder=embedder).label(TEXTS, items, LABELS).items()}
    assert titles == {0: "Minimum age for opening account", 1: "Reset passcode"}
    assert ThemeLabeller().label(TEXTS, items, LABELS)[0].title == "Open account"


def test_no_name_repeats_a_content_word() -> None:
    # keyword-like texts: the stretch "heart disease" followed by the word most members write next
    # would read "heart disease heart"
    texts = ["heart disease heart attack", "heart disease heart failure", "heart disease heart risk in women",
             "coronary heart disease heart", "card has not arrived", "my card has not arrived yet",
             "when will my card arrive", "card still not arrived"]
    names = theme_names(texts, np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert names == {0: "Disease heart attack", 1: "Card has not arrived"}
    for name in names.values():
        words = name.lower().split()
        assert len(set(words)) == len(words)
