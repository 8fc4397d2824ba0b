"""Incremental theming: a new item joins the nearest theme at once, or waits among the unthemed;
new themes emerge from the waiting items without re-clustering everything.

A waiting item close enough to a theme is adopted by it (at once when the caller forces the check, as the
worker's passes do), but stays *provisional*: it remains a candidate for a new theme for a while, so a novel
ask whose first items were adopted by a neighbouring theme still emerges, and moves them to itself.

Pure numpy: the caller keeps the state (centroids, sizes, the waiting pool) and stores what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clustering.base import UNTHEMED, Embeddings
from clustering.linkage import average_linkage
from clustering.vectors import unit

# Why these defaults: an item joins a theme only when it is about as close to the theme's centre as the
# theme's own typical member (the per-theme radius), and never below a global floor.
JOIN_FLOOR = 0.45
RADIUS_QUANTILE = 0.1


@dataclass
class Emerged:
    """Items that leave the pool: for a new theme (``new``), or adopted by an existing one after waiting."""

    theme: int
    members: list[int]
    new: bool = True


@dataclass
class IncrementalThemer:
    """Assigns items one at a time to known themes; proposes new themes from the waiting pool."""

    centroids: Embeddings
    sizes: np.ndarray
    radii: np.ndarray
    theme_ids: list[int]
    min_new_theme: int = 6
    new_theme_distance: float = 0.5
    join_floor: float = JOIN_FLOOR
    check_every: int = 10
    # Pool items that formed no new theme after this many checks join their nearest theme if above the floor.
    max_wait_checks: int = 10
    adopt_floor: float = 0.5
    # Adopted items stay candidates for a new theme until this many later adoptions (the stream mode's
    # pool wait, check_every x max_wait_checks): long enough for a novel ask to gather its items.
    provisional_keep: int = 100
    pool_keys: list[int] = field(default_factory=list)
    pool_vectors: list[np.ndarray] = field(default_factory=list)
    pool_waited: list[int] = field(default_factory=list)
    # Adopted items, oldest first, and the theme each is in now.
    provisional_keys: list[int] = field(default_factory=list)
    provisional_vectors: list[np.ndarray] = field(default_factory=list)
    provisional_themes: list[int] = field(default_factory=list)
    _since_check: int = 0

    @classmethod
    def from_labels(cls, embeddings: Embeddings, labels: np.ndarray, radius_quantile: float = RADIUS_QUANTILE,
                    **options: float) -> IncrementalThemer:
        """Start from a full clustering: one centroid and radius per theme."""
        themes = sorted(int(t) for t in set(labels.tolist()) if t != UNTHEMED)
        centroids, sizes, radii = [], [], []
        for theme in themes:
            members = embeddings[labels == theme]
            centre = unit(members.mean(axis=0))
            centroids.append(centre)
            sizes.append(len(members))
            radii.append(float(np.quantile(members @ centre, radius_quantile)))
        dims = embeddings.shape[1]
        return cls(centroids=np.vstack(centroids).astype(np.float32) if centroids else np.zeros((0, dims), np.float32),
                   sizes=np.asarray(sizes, dtype=np.int64), radii=np.asarray(radii, dtype=np.float32),
                   theme_ids=themes, **options)  # type: ignore[arg-type]

    def assign(self, key: int, vector: np.ndarray) -> int:
        """The theme the item joins (its centroid moves a little), or UNTHEMED: it waits in the pool."""
        if len(self.theme_ids):
            similarity = self.centroids @ vector
            best = int(np.argmax(similarity))
            if similarity[best] >= max(self.join_floor, min(self.radii[best], 0.9)):
                self._absorb(best, vector)
                return self.theme_ids[best]
        self.pool_keys.append(key)
        self.pool_vectors.append(np.asarray(vector, dtype=np.float32))
        self.pool_waited.append(0)
        self._since_check += 1
        return UNTHEMED

    def _absorb(self, index: int, vector: np.ndarray) -> None:
        size = self.sizes[index]
        centre = self.centroids[index] * size + vector
        self.centroids[index] = unit(centre)
        self.sizes[index] = size + 1

    def emerge(self, force: bool = False) -> list[Emerged]:
        """Pool changes, checked every few items: new themes of at least ``min_new_theme`` close items (the
        waiting and the provisional ones), then waiting items adopted by their nearest theme (all of them when
        forced, else those that waited ``max_wait_checks`` checks). A provisional member of a new theme is
        among its ``members`` like the others: the caller moves it."""
        if not force and self._since_check < self.check_every:
            return []
        self._since_check = 0
        if not self.pool_vectors and not self.provisional_vectors:
            return []
        waiting_count = len(self.pool_vectors)
        pool = np.vstack(self.pool_vectors + self.provisional_vectors)
        keys = self.pool_keys + self.provisional_keys
        taken = np.full(len(pool), UNTHEMED, dtype=np.int64)
        changes = self._new_themes(pool, keys, taken) if len(pool) >= self.min_new_theme else []
        self.pool_waited = [waited + 1 for waited in self.pool_waited]
        waiting = [i for i in range(waiting_count) if taken[i] == UNTHEMED and
                   (force or self.pool_waited[i] >= self.max_wait_checks)]
        adopted: list[int] = []
        if waiting and len(self.theme_ids):
            adopted = self._adopt(pool, taken, waiting)
            changes += self._adoptions(adopted, taken)
        self._keep_provisional(taken, waiting_count, adopted)
        self._keep_in_pool(taken[:waiting_count] == UNTHEMED)
        return changes

    def _keep_provisional(self, taken: np.ndarray, waiting_count: int, adopted: list[int]) -> None:
        """Provisional items a new theme took are its members now; the newly adopted join the end."""
        kept = [(key, vector, theme) for offset, (key, vector, theme) in enumerate(zip(
            self.provisional_keys, self.provisional_vectors, self.provisional_themes, strict=True))
            if taken[waiting_count + offset] == UNTHEMED]
        kept += [(self.pool_keys[i], self.pool_vectors[i], int(taken[i])) for i in adopted]
        kept = kept[-self.provisional_keep:] if self.provisional_keep > 0 else []
        self.provisional_keys = [key for key, _, _ in kept]
        self.provisional_vectors = [vector for _, vector, _ in kept]
        self.provisional_themes = [theme for _, _, theme in kept]

    def _adopt(self, pool: Embeddings, taken: np.ndarray, waiting: list[int]) -> list[int]:
        """Waiting items close enough to their nearest theme join it (``taken``); the rows adopted."""
        similarity = pool[waiting] @ self.centroids.T
        best = similarity.argmax(axis=1)
        adopted = []
        for row, index in enumerate(waiting):
            if similarity[row, best[row]] >= self.adopt_floor:
                taken[index] = self.theme_ids[int(best[row])]
                adopted.append(index)
        return adopted

    def _adoptions(self, rows: list[int], taken: np.ndarray) -> list[Emerged]:
        """One change per adopting theme."""
        members: dict[int, list[int]] = {}
        for index in rows:
            members.setdefault(int(taken[index]), []).append(self.pool_keys[index])
        return [Emerged(theme=theme, members=keys, new=False) for theme, keys in members.items()]

    def _keep_in_pool(self, keep: np.ndarray) -> None:
        self.pool_keys = [k for k, kept in zip(self.pool_keys, keep, strict=True) if kept]
        self.pool_vectors = [v for v, kept in zip(self.pool_vectors, keep, strict=True) if kept]
        self.pool_waited = [w for w, kept in zip(self.pool_waited, keep, strict=True) if kept]

    def _new_themes(self, pool: Embeddings, keys: list[int], taken: np.ndarray) -> list[Emerged]:
        groups = average_linkage(pool, self.new_theme_distance)
        emerged: list[Emerged] = []
        for group in np.unique(groups):
            members = np.flatnonzero(groups == group)
            if len(members) < self.min_new_theme:
                continue
            vectors = pool[members]
            centre = unit(vectors.mean(axis=0))
            theme = (max(self.theme_ids) + 1) if self.theme_ids else 0
            self.theme_ids.append(theme)
            self.centroids = np.vstack([self.centroids, centre[None, :].astype(np.float32)])
            self.sizes = np.append(self.sizes, len(members))
            self.radii = np.append(self.radii, np.float32(np.quantile(vectors @ centre, RADIUS_QUANTILE)))
            emerged.append(Emerged(theme=theme, members=[keys[i] for i in members]))
            taken[members] = theme
        return emerged
