"""Theme names: a short phrase taken from the theme's own sentences, distinct from every other theme's.

A name is the set of two or three word stems whose presence best picks out the theme's items among all
items (F-beta, beta 0.7, of "the text holds these stems" against "the text is in the theme"), written the way
the theme's items most often write it: the shortest stretch of a member sentence that holds them all
("card has not arrived"), contractions spelt out so that no "didn" or "don" is left over.

Given an embedder (the one that embedded the items), each theme's candidate phrases are embedded in one batch
and ranked by closeness to the theme's centroid, with the F-beta kept as a prior: the phrase that says what
the theme's items are about, not only what sets a few of them apart ("Minimum age for opening account",
not "Open account").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from itertools import combinations

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from clustering.base import Embedder, Embeddings, Labels
from clustering.vectors import unit, unit_rows

# scikit-learn's list holds words that name things in feedback ("top up", "bill", "system", "back"):
# kept as content words here. On top, greetings, filler and the verbs every request carries ("want").
CONTENT_WORDS = frozenset({"top", "up", "down", "back", "out", "off", "call", "fill", "find", "give", "move",
                           "show", "empty", "full", "bill", "fire", "interest", "system", "detail", "name",
                           "part", "side", "front", "amount", "found", "first", "last", "online", "thin", "thick"})
NAME_STOP_WORDS = (ENGLISH_STOP_WORDS - CONTENT_WORDS) | frozenset({
    "hi", "hello", "hey", "please", "thanks", "thank", "just", "need", "want", "help", "able", "way",
    "like", "know", "tell", "possible", "yes", "ok", "okay", "guys", "ago", "im", "ive", "dont", "cant",
    "did", "does", "doesnt", "got", "get", "getting", "really", "still", "lot", "thing", "things", "use",
    "using", "make", "why", "how", "can", "could", "would", "should", "will", "let", "going", "trying",
    "try", "tried", "anyone", "someone", "something", "sure", "think", "happened", "happen", "wanted",
})

# Spelt out so that a name never holds what a tokenizer splits into "don" + "t"; the keys are lowercase.
CONTRACTIONS = {"can't": "cannot", "cant": "cannot", "won't": "will not", "n't": " not", "'re": " are",
                "'ve": " have", "'ll": " will", "'m": " am", "'d": " would", "im": "I am", "ive": "I have",
                "dont": "do not", "didnt": "did not", "doesnt": "does not", "isnt": "is not", "wasnt": "was not"}

WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
MAX_WORDS = 6
MAX_CANDIDATES = 20
BETA = 0.7
# The words that may hold a name's content words together ("card *is not* working", "top up *my* card").
GLUE = frozenset({"a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "that", "of",
                  "for", "to", "in", "on", "at", "by", "with", "from", "into", "is", "are", "was", "were",
                  "be", "been", "being", "not", "no", "or", "and", "has", "have", "had", "do", "does", "did",
                  "cannot", "will"})
TOP_STEMS = 10
# Left out of a name the way a person titles a ticket ("Verify identity", "Top up with cheque"): they carry
# no meaning and pull the name away from what the theme is about (Banking77 similarity 0.764 -> 0.767).
DETERMINERS = frozenset({"a", "an", "the", "my", "your", "our", "their", "his", "her", "its"})
# Weight of ln(F-beta) beside the centroid cosine: the cosine alone picks long, rarely written phrases
# (Banking77 0.781); 0.03 to 0.08 all give 0.790-0.795, 0.05 the most.
PRIOR_WEIGHT = 0.05
# Taken off the score per content word beyond three: the cosine to a centroid grows with every content word
# a phrase holds, and on keyword-like texts (news headlines) the longest run would win ("Week bronco face
# patriot manning brady").
CONTENT_WORD_COST = 0.05


def stem(word: str) -> str:
    """A crude, deterministic stem so that 'arrived', 'arrival' and 'arrive' count as one word."""
    word = word.lower()
    for suffix in ("ing", "ed", "es", "s", "al", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":  # "transferr" -> "transfer"
        word = word[:-1]
    return word


def spell_out(word: str) -> str:
    """One word with its contraction written in full ("didn't" -> "did not", "I've" -> "I have")."""
    low = word.lower().replace("’", "'")
    if low in CONTRACTIONS:
        return CONTRACTIONS[low]
    for short in ("n't", "'re", "'ve", "'ll", "'m", "'d"):
        if low.endswith(short):
            return low[: -len(short)] + CONTRACTIONS[short]
    return word.split("'")[0].split("’")[0]  # a possessive: "bank's" -> "bank"


def _f_beta(precision: float, recall: float) -> float:
    """F-beta of "holds the stems" as a finder of the theme's members; beta < 1 leans to precision, so
    that a name says what sets the theme apart (0.7 scored best on Banking77 among 0.3 to 2, and the
    generality corpora read well with it)."""
    return (1 + BETA**2) * precision * recall / (BETA**2 * precision + recall)


class Corpus:
    """Every text as its words and content stems, and a presence column per stem over all texts."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.words = [WORD.findall(text) for text in texts]
        # A lone letter is no content word: the "s" of "author s transl" where a title lost its apostrophe.
        self.stems = [[stem(w) if len(w) > 1 and w.lower() not in NAME_STOP_WORDS and "'" not in w else ""
                       for w in words] for words in self.words]
        # Each text's stems as a set: a phrase looks for its stretch only in the texts holding all its stems.
        self.stem_sets = [set(stems) for stems in self.stems]
        self.vocabulary = sorted({s for stems in self.stems for s in stems if s})
        index = {s: i for i, s in enumerate(self.vocabulary)}
        rows = [row for row, stems in enumerate(self.stems) for s in set(stems) if s]
        columns = [index[s] for stems in self.stems for s in set(stems) if s]
        # Sparse: a dense text-by-stem table of 100,000 items would not fit in memory.
        self.present = sparse.csc_matrix((np.ones(len(rows), dtype=np.float64), (rows, columns)),
                                         shape=(len(texts), len(self.vocabulary)))
        self.overall = np.asarray(self.present.sum(axis=0)).ravel()

    def candidates(self, members: np.ndarray, groups: np.ndarray | None = None) -> list[tuple[float, tuple[int, ...]]]:
        """Stem sets of size two and three among the most telling stems of ``members``, best F-beta first.

        ``groups`` (one number per member: an area's themes) makes every group count the same: a set's
        recall is then the mean, over groups, of the share of the group's members that hold it.
        """
        present = self.present[members].tocsc()
        inside = np.asarray(present.sum(axis=0)).ravel()
        if groups is None:
            group_masks, breadth = [np.ones(len(members), dtype=bool)], inside / len(members)
        else:
            group_masks = [groups == g for g in np.unique(groups)]
            breadth = np.mean([np.asarray(present[mask].sum(axis=0)).ravel() / mask.sum() for mask in group_masks],
                              axis=0)
        # Recall times the square root of precision: common words that the theme is about ("card") stay in
        single = breadth * np.sqrt(inside / np.maximum(self.overall, 1))
        top = [int(i) for i in np.argsort(-single, kind="stable")[:TOP_STEMS] if inside[i] > 0]
        columns = self.present[:, top].toarray() > 0
        scored = []
        for size in (2, 3):
            for combo in combinations(range(len(top)), size):
                holds = columns[:, list(combo)].all(axis=1)
                held = holds[members]
                if held.any():
                    recall = float(np.mean([held[mask].mean() for mask in group_masks]))
                    precision = float(held.sum()) / float(holds.sum())
                    scored.append((_f_beta(precision, recall), tuple(top[c] for c in combo)))
        if not scored:  # one content word only: named by that word alone
            scored = [(float(single[i]), (i,)) for i in top]
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return scored

    def phrase(self, members: np.ndarray, combo: tuple[int, ...]) -> str | None:
        """The stretch of member text holding every stem of ``combo`` that members write most often.

        ``None`` when that stretch does not read as a name: longer than ``MAX_WORDS`` or held together by
        words other than ``GLUE`` ("card but the app" is two thoughts, "card to the app" one).
        """
        wanted = {self.vocabulary[i] for i in combo}
        windows = {row: window for row in members.tolist()
                   if wanted <= self.stem_sets[row] and (window := self._window(row, wanted)) is not None}
        counts = Counter(self._words(row, start, end) for row, (start, end) in windows.items())
        if not counts:
            return None
        words = min(counts.items(), key=lambda pair: (-pair[1], len(pair[0]), pair[0]))[0]
        same = [(row, start, end) for row, (start, end) in windows.items() if self._words(row, start, end) == words]
        words = self._extend(same, words)
        words = self._how_long(same, words)
        inner_ok = all(self.stems[row][p] or set(spell_out(self.words[row][p]).lower().split()) <= GLUE
                       for row, start, end in same[:1] for p in range(start, end + 1))
        if not inner_ok:  # keep the content words in the order members write them
            row, start, end = same[0]
            words = tuple(self.words[row][p].lower() for p in range(start, end + 1) if self.stems[row][p])
        if len(" ".join(words).split()) > MAX_WORDS or _repeats_a_word(words):
            return None
        return _without_determiners(" ".join(words))

    def _window(self, row: int, wanted: set[str]) -> tuple[int, int] | None:
        """The shortest stretch of one text, from a wanted stem, that holds every wanted stem."""
        stems = self.stems[row]
        best: tuple[int, int] | None = None
        for start in (p for p, s in enumerate(stems) if s in wanted):
            seen: set[str] = set()
            for end in range(start, len(stems)):
                if stems[end] in wanted:
                    seen.add(stems[end])
                if seen == wanted:
                    if best is None or end - start < best[1] - best[0]:
                        best = (start, end)
                    break
        return best

    def _words(self, row: int, start: int, end: int) -> tuple[str, ...]:
        return tuple(spell_out(w).lower() for w in self.words[row][start:end + 1])

    def _extend(self, same: list[tuple[int, int, int]], words: tuple[str, ...]) -> tuple[str, ...]:
        """Add the content word that most members write right after (or before) the phrase: a name that
        stops at "fees for top" or "lost" is missing its "up" or its "card"."""
        after = Counter(self.words[row][end + 1].lower() for row, _, end in same
                        if end + 1 < len(self.words[row]) and self.stems[row][end + 1])
        before = Counter(self.words[row][start - 1].lower() for row, start, _ in same
                         if start > 0 and self.stems[row][start - 1])
        if after and after.most_common(1)[0][1] * 2 > len(same):
            words = (*words, min(after.items(), key=lambda pair: (-pair[1], pair[0]))[0])
        if before and before.most_common(1)[0][1] * 2 > len(same):
            words = (min(before.items(), key=lambda pair: (-pair[1], pair[0]))[0], *words)
        return words

    def _how_long(self, same: list[tuple[int, int, int]], words: tuple[str, ...]) -> tuple[str, ...]:
        """A "how long does a transfer take" question is about a duration: named "transfer time", not
        "long does a transfer" (the "how" is a stop word, so the stretch starts at "long")."""
        row, start, _ = same[0]
        if words[0] != "long" or start == 0 or self.words[row][start - 1].lower() != "how":
            return words
        rest = tuple(w for w in words[1:] if w not in GLUE | {"it", "take", "takes", "usually"})
        return (*rest, "time") if rest else words

    def surface(self, members: np.ndarray, column: int) -> str:
        """The commonest way members write one stem ("arrived" for "arriv")."""
        target = self.vocabulary[column]
        forms: Counter[str] = Counter(w.lower() for row in members.tolist()
                                      for w, s in zip(self.words[row], self.stems[row], strict=True)
                                      if s == target)
        return min(forms.items(), key=lambda pair: (-pair[1], pair[0]))[0]


def theme_names(texts: Sequence[str], labels: Labels, embeddings: Embeddings | None = None,
                embedder: Embedder | None = None, taken_names: Collection[str] = ()) -> dict[int, str]:
    """A distinct name per theme id (``UNTHEMED`` gets none); larger themes choose first.

    With both ``embeddings`` (of ``texts``) and the ``embedder`` that made them, candidates are ranked by
    closeness to the theme's centroid; without, by F-beta alone (no model is needed). No name shares its
    content words with another's or with one of ``taken_names`` (the themes that exist already).
    """
    themes = sorted(int(t) for t in set(labels.tolist()) if t >= 0)
    if not themes:
        return {}
    corpus = Corpus(texts)
    sizes = {t: int((labels == t).sum()) for t in themes}
    ranked = {theme: candidate_phrases(corpus, np.flatnonzero(labels == theme)) for theme in themes}
    if embeddings is not None and embedder is not None:
        centroids = {theme: np.asarray(embeddings[labels == theme], dtype=np.float64).mean(axis=0) for theme in themes}
        ranked = rank_by_closeness(ranked, centroids, embedder)
    taken = {content_key(name) for name in taken_names}
    names: dict[int, str] = {}
    for theme in sorted(themes, key=lambda t: (-sizes[t], t)):
        name = next((phrase for phrase in ranked[theme] if content_key(phrase) not in taken), "")
        if not name:  # nothing reads as a phrase: the best stems as members write them
            name = _stems_as_written(corpus, np.flatnonzero(labels == theme))
        name = unique_name(name or "untitled theme", taken, theme)
        taken.add(content_key(name))
        names[theme] = name[0].upper() + name[1:]
    return names


def candidate_phrases(corpus: Corpus, members: np.ndarray, groups: np.ndarray | None = None) -> dict[str, float]:
    """The phrases of the best ``MAX_CANDIDATES`` stem sets of ``members`` (``groups``: see
    ``Corpus.candidates``), best F-beta first, each with its F-beta."""
    phrases: dict[str, float] = {}
    for f_score, combo in corpus.candidates(members, groups)[:MAX_CANDIDATES]:
        phrase = corpus.phrase(members, combo)
        if phrase is not None and phrase not in phrases:
            phrases[phrase] = f_score
    return phrases


def _stems_as_written(corpus: Corpus, members: np.ndarray) -> str:
    candidates = corpus.candidates(members)
    return " ".join(corpus.surface(members, i) for i in candidates[0][1]) if candidates else ""


def rank_by_closeness(ranked: dict[int, dict[str, float]], targets: dict[int, np.ndarray], embedder: Embedder,
                      prior_weight: float = PRIOR_WEIGHT) -> dict[int, dict[str, float]]:
    """Each group's candidates ({phrase: F-beta}) reordered by cosine to its target vector (a theme's centroid),
    plus ``prior_weight`` * ln(F-beta), less ``CONTENT_WORD_COST`` per content word beyond three.

    Every group's phrases go to the embedder in one batch (about 13 per theme after duplicates).
    """
    phrases = sorted({phrase for candidates in ranked.values() for phrase in candidates})
    if not phrases:
        return ranked
    vectors = unit_rows(np.asarray(embedder.embed(phrases), dtype=np.float64))
    row = {phrase: i for i, phrase in enumerate(phrases)}
    reordered = {}
    for group, candidates in ranked.items():
        target = unit(np.asarray(targets[group], dtype=np.float64))
        score = {p: float(vectors[row[p]] @ target) + prior_weight * np.log(f)
                 - CONTENT_WORD_COST * max(sum(w not in GLUE for w in p.split()) - 3, 0) for p, f in candidates.items()}
        # Stable on ties: the F-beta order (the dict's own) decides between equal scores.
        reordered[group] = {p: candidates[p] for p in sorted(candidates, key=lambda p: -score[p])}
    return reordered


def _repeats_a_word(words: tuple[str, ...]) -> bool:
    """Whether a content word comes twice: keyword-like texts ("math math theory theory") hold such runs,
    and a name never does."""
    content = [w for w in words if w not in GLUE]
    return len(set(content)) < len(content)


def _without_determiners(phrase: str) -> str:
    """The phrase without its articles and possessives, unless fewer than two words would be left."""
    kept = [w for w in phrase.split() if w not in DETERMINERS]
    return " ".join(kept) if len(kept) >= 2 else phrase


def content_key(name: str) -> str:
    """What two names must not share: their content stems, in any order ("Transfer failed" and "Failed
    transfer" are one name), or the lowercase name when it holds no content word."""
    stems = sorted({stem(w) for w in WORD.findall(name.lower()) if w not in NAME_STOP_WORDS and w not in GLUE})
    return " ".join(stems) or name.lower()


def unique_name(name: str, taken: Collection[str], number: int) -> str:
    """``name``, numbered when its ``content_key`` is ``taken`` (every candidate was), so that no two ever
    read the same."""
    return name if content_key(name) not in taken else f"{name} ({number})"
