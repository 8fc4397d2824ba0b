"""Impact signals per channel: customer tier and account value, from an item field or a lookup file.

Channel options: ``tier_field`` and ``value_field`` name metadata keys the intake plugin filled in;
``impact_file`` is a CSV with columns ``key,tier,value`` matched on ``impact_key`` (``author`` by
default, or a metadata key such as ``account``). A field on the item wins over the lookup file.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.errors import FeedbackloopError
from core.types import ItemDraft

# The options every channel takes for impact, whatever its type (declared beside each type's own).
IMPACT_OPTIONS = {
    "tier_field": "metadata key holding the customer's tier",
    "value_field": "metadata key holding the account's value (a number)",
    "impact_file": "CSV with columns key,tier,value to look each item's impact up in",
    "impact_key": "what impact_file is matched on: author (default) or a metadata key",
}


class ImpactConfigError(FeedbackloopError):
    """An impact option that cannot work (missing file, bad column, bad number)."""


@dataclass(frozen=True)
class Impact:
    tier: str | None
    value: float | None


def _number(raw: Any, where: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError) as error:
        raise ImpactConfigError(f"{where}: account value {raw!r} is not a number") from error


@lru_cache(maxsize=32)
def _load_lookup(path: str, _mtime: float) -> dict[str, Impact]:
    # Keyed on the modification time too, so an edited file is read again without a restart.
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "key" not in reader.fieldnames:
                raise ImpactConfigError(f"{path}: the impact file needs a header with 'key', 'tier', 'value'")
            table = {}
            for row in reader:
                key = (row.get("key") or "").strip().lower()
                if key:
                    table[key] = Impact(tier=(row.get("tier") or None),
                                        value=_number(row.get("value"), f"{path}: line {reader.line_num}"))
            return table
    except OSError as error:
        raise ImpactConfigError(f"impact file {path}: cannot read: {error.strerror}") from error


def lookup_table(path: str) -> dict[str, Impact]:
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as error:
        raise ImpactConfigError(f"impact file {path}: cannot read: {error.strerror}") from error
    return _load_lookup(path, mtime)


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse a channel whose impact file cannot be read, when it is configured rather than at intake."""
    if options.get("impact_file"):
        lookup_table(str(options["impact_file"]))


def apply_impact(drafts: Sequence[ItemDraft], options: Mapping[str, Any]) -> None:
    """Fill each draft's tier and value from the channel's configured field or lookup file."""
    tier_field, value_field = options.get("tier_field"), options.get("value_field")
    table = lookup_table(str(options["impact_file"])) if options.get("impact_file") else None
    key_field = str(options.get("impact_key", "author"))
    for draft in drafts:
        if table is not None:
            key = draft.author if key_field == "author" else draft.metadata.get(key_field)
            found = table.get(str(key).strip().lower()) if key is not None else None
            if found is not None:
                draft.customer_tier = draft.customer_tier or found.tier
                draft.account_value = draft.account_value if draft.account_value is not None else found.value
        if tier_field and draft.metadata.get(str(tier_field)) not in (None, ""):
            draft.customer_tier = str(draft.metadata[str(tier_field)])
        if value_field and draft.metadata.get(str(value_field)) not in (None, ""):
            # A bad value in one delivery must not lose the feedback: it stays in metadata, unweighted.
            with suppress(TypeError, ValueError):
                draft.account_value = float(draft.metadata[str(value_field)])
