"""Theme labels: a name (clustering.names), class-based TF-IDF keywords beside it, representative quotes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from clustering.area_names import area_names
from clustering.base import UNTHEMED, Embedder, Embeddings, Labels, Vectorizer
from clustering.names import theme_names
from clustering.vectors import unit

# A theme labelled from a sample keeps at least this many of its items (all of them when it has fewer).
MIN_PER_GROUP = 200
# Words that appear in almost every customer message carry no theme; dropped on top of English ones.
EXTRA_STOP_WORDS = frozenset({"hi", "hello", "hey", "please", "thanks", "thank", "just", "need", "want",
                              "help", "im", "ive", "dont", "did", "does", "doesnt", "got", "get",
                              "able", "way", "like", "know", "tell", "possible", "yes", "ok"})


@dataclass(frozen=True)
class ThemeLabel:
    """``title`` is the theme's name ("Card is not working"); ``keywords`` the c-TF-IDF terms beside it."""

    title: str
    keywords: list[str]
    quote_indices: list[int]


def keyword_vectorizer() -> CountVectorizer:
    """The default term counter for keywords: words and two-word phrases, stop words and digits left out."""
    return CountVectorizer(ngram_range=(1, 2), stop_words=sorted(ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS),
                           token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b", lowercase=True)


def class_tfidf_keywords(texts: Sequence[str], labels: Labels, top_n: int = 8, *,
                         vectorizer: Vectorizer | None = None) -> dict[int, list[str]]:
    """Top words and two-word phrases per theme by class-based TF-IDF (BERTopic's c-TF-IDF).

    ``vectorizer`` counts the terms (refitted on each call); ``keyword_vectorizer()`` when not given.
    """
    themes = sorted(int(t) for t in set(labels.tolist()) if t >= 0)
    if not themes:
        return {}
    documents = [" ".join(texts[int(i)] for i in np.flatnonzero(labels == t)) for t in themes]
    vectorizer = keyword_vectorizer() if vectorizer is None else vectorizer
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # every word was a stop word
        return {t: [] for t in themes}
    vocabulary = vectorizer.get_feature_names_out()
    term_frequency = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    average_words = counts.sum() / len(themes)
    idf = np.log(1 + average_words / np.maximum(counts.sum(axis=0), 1))
    scores = term_frequency * idf
    keywords: dict[int, list[str]] = {}
    for row, theme in enumerate(themes):
        ranked = np.argsort(-scores[row], kind="stable")
        keywords[theme] = [str(vocabulary[i]) for i in ranked[:top_n] if scores[row, i] > 0]
    return keywords


def readable_title(keywords: Sequence[str], max_terms: int = 3) -> str:
    """A short title from the keywords: phrases first, no word repeated, e.g. 'Card arrival · delivery'."""
    chosen: list[str] = []
    used: set[str] = set()
    phrases = [k for k in keywords if " " in k] + [k for k in keywords if " " not in k]
    for phrase in phrases:
        words = set(phrase.split())
        if words & used or len(words) < len(phrase.split()):  # skip "old old"-style phrases
            continue
        chosen.append(phrase)
        used |= words
        if len(chosen) == max_terms:
            break
    if not chosen:
        return "Untitled theme"
    title = " · ".join(chosen)
    return title[0].upper() + title[1:]


def representative_quotes(embeddings: Embeddings, member_indices: Sequence[int], count: int = 3,
                          diversity: float = 0.3) -> list[int]:
    """Indices of central but mutually different members (maximal marginal relevance to the centroid)."""
    members = np.asarray(member_indices, dtype=np.int64)
    if len(members) == 0:
        return []
    vectors = embeddings[members]
    relevance = vectors @ unit(vectors.mean(axis=0))
    picked = [int(np.argmax(relevance))]
    while len(picked) < min(count, len(members)):
        redundancy = (vectors @ vectors[picked].T).max(axis=1)
        score = (1 - diversity) * relevance - diversity * redundancy
        score[picked] = -np.inf
        picked.append(int(np.argmax(score)))
    return [int(members[i]) for i in picked]


def labelling_sample(labels: Labels, limit: int) -> np.ndarray:
    """Rows (sorted) to label from when there are more than ``limit``: every group (theme, area, the unthemed)
    keeps at most an equal share of ``limit`` (and at least ``MIN_PER_GROUP``), evenly spaced through it, so
    small themes keep all their items and the cost stops growing with the corpus. Deterministic."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    groups, counts = np.unique(labels, return_counts=True)
    cap = max(MIN_PER_GROUP, limit // len(groups))
    kept = []
    for group, count in zip(groups.tolist(), counts.tolist(), strict=True):
        members = np.flatnonzero(labels == group)
        kept.append(members if count <= cap else members[np.linspace(0, count - 1, cap).round().astype(np.int64)])
    return np.sort(np.concatenate(kept))


class ThemeLabeller:
    """The pipeline's labelling stage: a distinct name per theme, c-TF-IDF keywords, representative quotes.

    ``vectorizer`` is any ``CountVectorizer``-like term counter (``None``: ``keyword_vectorizer()``, built
    afresh on every call so that labelling never depends on an earlier call); it is fitted in place on
    each call. ``top_n`` is the number of keywords kept per theme. ``embedder``, the one that embedded the
    items, ranks each theme's candidate names by closeness to its centroid (``None``: by F-beta alone).
    Beyond ``max_texts`` items, names, keywords and quotes come from ``labelling_sample`` (an equal share per
    theme): reading every text of a million-item corpus would cost minutes for the same words.
    """

    def __init__(self, vectorizer: Vectorizer | None = None, top_n: int = 8, embedder: Embedder | None = None,
                 max_texts: int = 50_000) -> None:
        self.vectorizer = vectorizer
        self.top_n = top_n
        self.embedder = embedder
        self.max_texts = max_texts

    def label(self, texts: Sequence[str], embeddings: Embeddings, labels: Labels) -> dict[int, ThemeLabel]:
        rows = labelling_sample(labels, self.max_texts)
        if len(rows) < len(labels):
            return _back_to_rows(self.label([texts[i] for i in rows.tolist()], embeddings[rows], labels[rows]), rows)
        # Names come from the texts themselves, not from the keywords: a keyword list reads as one only
        # when its terms happen to be in order ("Going don · reverted · topup" before issue 18).
        return self._labels(texts, embeddings, labels, theme_names(texts, labels, embeddings, self.embedder))

    def label_areas(self, texts: Sequence[str], embeddings: Embeddings, labels: Labels,
                    area_of_theme: Mapping[int, int], theme_titles: Collection[str]) -> dict[int, ThemeLabel]:
        """A label per area ({theme: area} groups the themes of ``labels``): its name says what its themes
        share and is none of ``theme_titles`` (clustering.area_names); keywords and quotes as a theme's."""
        sample = labelling_sample(labels, self.max_texts)
        if len(sample) < len(labels):
            return _back_to_rows(self.label_areas([texts[i] for i in sample.tolist()], embeddings[sample],
                                                  labels[sample], area_of_theme, theme_titles), sample)
        rows = np.asarray([area_of_theme.get(int(t), UNTHEMED) for t in labels.tolist()], dtype=np.int64)
        names = area_names(texts, labels, area_of_theme, theme_titles, embeddings, self.embedder)
        return self._labels(texts, embeddings, rows, names)

    def _labels(self, texts: Sequence[str], embeddings: Embeddings, labels: Labels,
                names: dict[int, str]) -> dict[int, ThemeLabel]:
        keywords = class_tfidf_keywords(texts, labels, self.top_n, vectorizer=self.vectorizer)
        return {
            group: ThemeLabel(
                title=names.get(group) or readable_title(words),
                keywords=words,
                quote_indices=representative_quotes(embeddings, np.flatnonzero(labels == group).tolist()),
            )
            for group, words in keywords.items()
        }


def _back_to_rows(labelled: dict[int, ThemeLabel], rows: np.ndarray) -> dict[int, ThemeLabel]:
    """Labels made on a sample, their quotes pointing at the sample's rows, pointed back at the corpus's."""
    return {group: ThemeLabel(label.title, label.keywords, [int(rows[i]) for i in label.quote_indices])
            for group, label in labelled.items()}


def label_themes(texts: Sequence[str], embeddings: Embeddings, labels: Labels) -> dict[int, ThemeLabel]:
    return ThemeLabeller().label(texts, embeddings, labels)
