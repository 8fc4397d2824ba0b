"""Area names: what an area's themes have in common, in a phrase that is no theme's name and no other area's.

An area's items are mostly its largest theme's, so naming the area like a theme (the stems that pick out
its items) names that theme again: on Banking77, 17 of 24 areas had exactly a theme's name. Here every
theme of the area counts the same: a stem set's recall is the mean, over the area's themes, of the share
of the theme's items that hold it ("card" is in every card theme, "arrived" in one), its precision the
share of all items holding it that are in the area. Given the embedder, candidates are ranked by
closeness to the mean of the themes' centroids (each theme weighing the same), with that F-beta as a
prior, the way theme names are ranked (clustering.names).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from clustering.base import Embedder, Embeddings, Labels
from clustering.names import Corpus, candidate_phrases, content_key, rank_by_closeness, unique_name
from clustering.vectors import unit

# Weight of ln(F-beta) beside the cosine, four times a theme's (clustering.names.PRIOR_WEIGHT): at 0.05 the
# cosine picks one theme's specific ask ("Top up was reverted" for five top-up themes); 0.2 gives the words
# the themes share ("Top up", "Card payment"); 0.5 starts to pick rare stems again ("Payment app").
AREA_PRIOR_WEIGHT = 0.2


def area_names(texts: Sequence[str], theme_labels: Labels, area_of_theme: Mapping[int, int],
               theme_titles: Collection[str] = (), embeddings: Embeddings | None = None,
               embedder: Embedder | None = None) -> dict[int, str]:
    """A name per area of ``area_of_theme`` ({theme: area}), distinct from every other area's and from every
    name in ``theme_titles``; larger areas choose first. With ``embeddings`` and ``embedder``, candidates
    are ranked by closeness to the area's mean theme centroid; without, by the themes-alike F-beta."""
    areas = sorted(set(area_of_theme.values()))
    if not areas:
        return {}
    corpus = Corpus(texts)
    themes_of = {area: sorted(t for t, a in area_of_theme.items() if a == area) for area in areas}
    area_rows = {area: np.flatnonzero(np.isin(theme_labels, themes_of[area])) for area in areas}
    ranked = {area: candidate_phrases(corpus, area_rows[area], theme_labels[area_rows[area]]) for area in areas}
    if embeddings is not None and embedder is not None:
        centres = {area: _mean_theme_centroids(embeddings, theme_labels, themes_of[area]) for area in areas}
        ranked = rank_by_closeness(ranked, centres, embedder, AREA_PRIOR_WEIGHT)
    taken = {content_key(title) for title in theme_titles}
    names: dict[int, str] = {}
    for area in sorted(areas, key=lambda a: (-len(area_rows[a]), a)):
        name = next((phrase for phrase in ranked[area] if content_key(phrase) not in taken), "")
        name = unique_name(name or "untitled area", taken, area)
        taken.add(content_key(name))
        names[area] = name[0].upper() + name[1:]
    return names


def _mean_theme_centroids(embeddings: Embeddings, theme_labels: Labels, themes: list[int]) -> np.ndarray:
    """The mean of the themes' unit centroids: each theme weighs the same, whatever its size."""
    return np.asarray(np.mean([unit(np.asarray(embeddings[theme_labels == t], dtype=np.float64).mean(axis=0))
                    for t in themes], axis=0))
