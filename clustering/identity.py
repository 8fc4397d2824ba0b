"""Theme identity across re-clustering: match new clusters to their predecessors by shared items."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Set

# A new cluster inherits an old theme's id when they share at least this fraction of the smaller one.
IDENTITY_OVERLAP = 0.5


def match_to_predecessors(new_members: Mapping[int, Set[Hashable]],
                          old_members: Mapping[int, Set[Hashable]]) -> dict[int, int]:
    """Greedy one-to-one matching of new clusters to old themes, largest overlap first (ties: lower ids)."""
    candidates = []
    for label, members in new_members.items():
        for theme_id, old in old_members.items():
            shared = len(members & old)
            if shared and shared >= IDENTITY_OVERLAP * min(len(members), len(old)):
                candidates.append((shared, -theme_id, -label, label, theme_id))
    mapping: dict[int, int] = {}
    used: set[int] = set()
    for _, _, _, label, theme_id in sorted(candidates, reverse=True):
        if label not in mapping and theme_id not in used:
            mapping[label] = theme_id
            used.add(theme_id)
    return mapping
