"""The overview's filter: what a person asked for, read from and written to the query string, so a link
keeps the filters; every value is checked, and a bad one is an ``InvalidInput`` naming the parameter."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

from core.errors import InvalidInput
from core.types import ThemeStatus

WINDOWS: dict[str, timedelta | None] = {"7d": timedelta(days=7), "30d": timedelta(days=30),
                                        "90d": timedelta(days=90), "all": None}
SIGNAL_PERIOD_FOR_ALL = timedelta(days=90)
SPARK_BUCKETS = 8
TREND_PERIODS = 3
# The direction each sort key reads best in by default: what needs attention first, labels A to Z.
SORTS: dict[str, Literal["asc", "desc"]] = {
    "attention": "desc", "trend": "desc", "spike": "desc", "impact": "desc", "volume": "desc",
    "sentiment": "asc", "label": "asc"}
DEFAULT_WINDOW = "30d"
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 10_000
MAX_SEARCH_CHARS = 200
MAX_NAME_CHARS = 128  # FeedbackItem.channel's width; kinds are shorter still
TOP_CHANNELS = 3
STATUSES = tuple(status.value for status in ThemeStatus)
ORDERS: dict[str, Literal["", "asc", "desc"]] = {"": "", "asc": "asc", "desc": "desc"}
QUERY_KEYS = ("q", "status", "owner", "area", "channel", "kind", "origin", "window", "sort", "order", "page",
              "per_page")
# Whose feedback: the company's own people (items whose metadata says "internal", e.g. Slack and Teams, or
# any channel with the option internal=true), everyone else, or (no value) both.
ORIGINS = ("internal", "external")

Owned = int | Literal["none"] | None


@dataclass(frozen=True)
class OverviewFilter:
    """What the overview shows; every field is checked when built, so a bad link cannot reach SQL."""

    statuses: tuple[str, ...] = ()  # empty: every status but archived, merged and ignored
    owner: Owned = None  # an owner id, "none" for themes nobody owns, None for all
    area: int | None = None  # an area id (core/themes/areas.py): only that area's themes
    channel: str | None = None
    kind: str | None = None
    origin: str | None = None  # "internal", "external", or None for both
    window: str = DEFAULT_WINDOW
    search: str = ""
    sort: str = "attention"
    order: Literal["", "asc", "desc"] = ""  # "": the sort key's own direction (SORTS)
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    def __post_init__(self) -> None:
        unknown = [status for status in self.statuses if status not in STATUSES]
        if unknown:
            raise InvalidInput(f"status {unknown[0]!r} is not one of {', '.join(STATUSES)}")
        object.__setattr__(self, "statuses", tuple(sorted(set(self.statuses))))
        if self.owner != "none" and not _an_id_or_none(self.owner):
            raise InvalidInput("owner must be an owner id (a positive whole number) or 'none'")
        if not _an_id_or_none(self.area):
            raise InvalidInput("area must be an area id (a positive whole number)")
        for name, value, limit in (("channel", self.channel, MAX_NAME_CHARS), ("kind", self.kind, 32)):
            if value is not None and not (0 < len(value) <= limit and "\x00" not in value):
                raise InvalidInput(f"{name} must be 1 to {limit} characters")
        if self.origin is not None and self.origin not in ORIGINS:
            raise InvalidInput(f"origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        if self.window not in WINDOWS:
            raise InvalidInput(f"window {self.window!r} is not one of {', '.join(WINDOWS)}")
        object.__setattr__(self, "search", checked_search(self.search))
        if self.sort not in SORTS:
            raise InvalidInput(f"sort {self.sort!r} is not one of {', '.join(SORTS)}")
        if self.order not in ("", "asc", "desc"):
            raise InvalidInput("order must be 'asc' or 'desc'")
        if not 1 <= self.page <= MAX_PAGE:
            raise InvalidInput(f"page must be between 1 and {MAX_PAGE}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")

    @property
    def descending(self) -> bool:
        return (self.order or SORTS[self.sort]) == "desc"

    def with_changes(self, **changes: Any) -> OverviewFilter:
        """This filter with some fields changed; any change but the page itself goes back to page 1."""
        changes.setdefault("page", 1)
        return replace(self, **changes)

    def to_query(self) -> str:
        return filter_to_query(self)


def _an_id_or_none(value: object) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


def checked_search(text: str) -> str:
    """A search as typed, trimmed; too long, or holding a NUL (PostgreSQL refuses those), is refused."""
    text = text.strip()
    if len(text) > MAX_SEARCH_CHARS:
        raise InvalidInput(f"search must be at most {MAX_SEARCH_CHARS} characters")
    if "\x00" in text:
        raise InvalidInput("search must not contain NUL characters")
    return text


def filter_to_query(flt: OverviewFilter) -> str:
    """The filter as a query string holding only what differs from the defaults, in a fixed order."""
    pairs: list[tuple[str, str]] = []
    if flt.search:
        pairs.append(("q", flt.search))
    pairs += [("status", status) for status in flt.statuses]
    if flt.owner is not None:
        pairs.append(("owner", str(flt.owner)))
    if flt.area is not None:
        pairs.append(("area", str(flt.area)))
    pairs += [(key, value) for key, value in (("channel", flt.channel), ("kind", flt.kind), ("origin", flt.origin))
              if value is not None]
    for key, value, default in (("window", flt.window, DEFAULT_WINDOW), ("sort", flt.sort, "attention"),
                                ("order", flt.order, ""), ("page", str(flt.page), "1"),
                                ("per_page", str(flt.per_page), str(DEFAULT_PER_PAGE))):
        if value != default:
            pairs.append((key, value))
    return urlencode(pairs)


def filter_from_query(params: str | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]],
                      ignore: Iterable[str] = ()) -> OverviewFilter:
    """The filter a query string (or its pairs: Starlette's ``query_params.multi_items()``) asks for.

    Empty values mean "no filter" (an HTML form sends its empty fields); unknown names, repeated
    single-valued names and values that do not parse are refused with ``InvalidInput``, except the
    names in ``ignore`` (parameters of the page itself).
    """
    pairs = _pairs(params)
    skipped = set(ignore)
    values: dict[str, list[str]] = defaultdict(list)
    for key, value in pairs:
        if key in skipped:
            continue
        if key not in QUERY_KEYS:
            raise InvalidInput(f"unknown parameter {key!r}; expected one of {', '.join(QUERY_KEYS)}")
        if value.strip():
            values[key].append(value.strip())
    for key, found in values.items():
        if key != "status" and len(found) > 1:
            raise InvalidInput(f"parameter {key!r} given {len(found)} times; give it once")
    one = {key: found[0] for key, found in values.items() if key != "status"}
    owner: Owned = None
    if "owner" in one:
        owner = "none" if one["owner"] == "none" else _whole_number("owner", one["owner"])
    area = _whole_number("area", one["area"]) if "area" in one else None
    order = ORDERS.get(one.get("order", ""))
    if order is None:
        raise InvalidInput("order must be 'asc' or 'desc'")
    return OverviewFilter(
        statuses=tuple(values.get("status", [])), owner=owner, area=area, channel=one.get("channel"),
        kind=one.get("kind"), origin=one.get("origin"),
        window=one.get("window", DEFAULT_WINDOW), search=one.get("q", ""), sort=one.get("sort", "attention"),
        order=order, page=_whole_number("page", one.get("page", "1")),
        per_page=_whole_number("per_page", one.get("per_page", str(DEFAULT_PER_PAGE))))


def _pairs(params: str | Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(params, str):
        try:
            return parse_qsl(params.lstrip("?"), keep_blank_values=True, strict_parsing=False,
                             max_num_fields=100)
        except ValueError as error:
            raise InvalidInput(f"the query string cannot be read: {error}") from error
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            pairs += [(key, value)] if isinstance(value, str) else [(key, str(v)) for v in value]
        return pairs
    return [(str(key), str(value)) for key, value in params]


def _whole_number(name: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidInput(f"{name} must be a positive whole number, not {value[:40]!r}")
    return int(value)
