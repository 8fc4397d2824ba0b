"""Owner suggestions for themes no rule matches: who owns the most similar themes routed before."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from clustering.vectors import unit
from core.models import Owner, Theme

NEIGHBOURS = 3


@dataclass(frozen=True)
class Suggestion:
    owner: str
    # In [0, 1]: the best neighbour's cosine similarity times the owner's share of the neighbours' votes.
    confidence: float
    similar_theme_ids: tuple[int, ...]


def _unit(blob: bytes | None) -> np.ndarray | None:
    if not blob:
        return None
    vector = np.frombuffer(blob, dtype=np.float32)
    return unit(vector) if float(np.linalg.norm(vector)) else None


def suggest_owners(session: Session, theme_ids: Sequence[int]) -> dict[int, Suggestion]:
    routed = session.execute(
        select(Theme.id, Theme.centroid, Owner.name).join(Owner, Owner.id == Theme.owner_id)
        .where(Theme.centroid.is_not(None))
    ).all()
    known = [(theme_id, _unit(centroid), owner) for theme_id, centroid, owner in routed]
    suggestions = {}
    for theme in session.scalars(select(Theme).where(Theme.id.in_(list(theme_ids)))):
        vector = _unit(theme.centroid)
        if vector is None:
            continue
        scored = sorted(((float(vector @ other), other_id, owner) for other_id, other, owner in known
                         if other is not None and other_id != theme.id and other.shape == vector.shape),
                        reverse=True)[:NEIGHBOURS]
        scored = [entry for entry in scored if entry[0] > 0]
        if not scored:
            continue
        votes: dict[str, float] = defaultdict(float)
        for similarity, _, owner in scored:
            votes[owner] += similarity
        best = max(votes, key=lambda name: votes[name])
        nearest = max(similarity for similarity, _, owner in scored if owner == best)
        confidence = nearest * votes[best] / sum(votes.values())
        suggestions[theme.id] = Suggestion(best, round(min(1.0, confidence), 3),
                                           tuple(other_id for _, other_id, owner in scored if owner == best))
    return suggestions
