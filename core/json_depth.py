"""How deeply parsed JSON nests, measured without recursion: a deep enough document makes Python's own
recursive code (``json``, ``copy``, the JSON columns) raise RecursionError, which would be a 500."""

from __future__ import annotations

from typing import Any


def nesting_depth(value: Any, limit: int) -> int:
    """How many lists and dicts nest in ``value`` (a scalar is 0, ``{}`` is 1); counting stops past ``limit``."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list | tuple) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return deepest
