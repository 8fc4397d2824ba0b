"""Built-in intake channel type ``app_store``: an app's customer reviews from the App Store's public
reviews feed, polled.

The feed is ``{base_url}/{country}/rss/customerreviews/page={n}/id={app_id}/sortby=mostrecent/json``
(iTunes RSS, JSON form): up to 50 reviews a page, newest first, at most 10 pages. Each entry carries
``id``, ``title``, ``content``, ``im:rating``, ``im:version``, ``author.name``, ``updated`` (ISO 8601),
``im:voteSum`` and ``im:voteCount``, each as ``{"label": ...}``; the first page may open with an entry
describing the app (no ``im:rating``), skipped; a page with one entry gives it as an object, not a list
(tests/data/app_store/SOURCE.md).

The cursor is the newest (update time, review id) stored. A round reads page 1, 2... while every review
on the page is newer than that mark, and stops at the first page that reaches it (or the last page);
mid-round the cursor holds the page to read next, so a poller killed between pages carries on there.
An edited review comes back with a new update time and is stored as an edit of the same item.

Options: ``app_id`` (required: the numeric id in the app's App Store URL), ``country`` (the storefront,
default ``us``), ``max_pages`` (1-10, default 10), ``base_url`` (default ``https://itunes.apple.com``;
tests point it at a local server).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any

from core import hookimpl
from core.clock import parse_timestamp
from core.errors import InvalidInput
from core.types import ChannelPoller, ChannelType, ItemDraft, PollPage, PollRequest, reject_webhooks
from plugins.poll_http import PollFailed, fetch_url

OPTIONS = {
    "app_id": "the app's numeric App Store id (the digits after 'id' in its store URL)",
    "country": "the storefront's two-letter country code (default us)",
    "max_pages": "pages of 50 reviews read per round at most, 1-10 (default 10, the feed's limit)",
    "base_url": "the feed's server (default https://itunes.apple.com)",
}
DEFAULT_BASE_URL = "https://itunes.apple.com"
FEED_PAGES = 10
APP_ID = re.compile(r"^[0-9]{1,20}$")
COUNTRY = re.compile(r"^[a-z]{2}$")
LAST_PAGE = re.compile(r"/page=([0-9]+)/")
# What a review's edit may change on its stored item.
EDITABLE_METADATA = frozenset({"rating", "app_version", "vote_sum", "vote_count"})


def check_options(options: Mapping[str, Any]) -> None:
    """The app id, storefront and page count must make a feed URL."""
    if not APP_ID.match(str(options.get("app_id") or "")):
        raise InvalidInput("an app_store channel needs the option app_id=<the app's numeric App Store id>")
    if not COUNTRY.match(str(options.get("country") or "us").lower()):
        raise InvalidInput(f"option 'country' must be a two-letter country code, not {options.get('country')!r}")
    _max_pages(options)


def _max_pages(options: Mapping[str, Any]) -> int:
    raw = options.get("max_pages") or FEED_PAGES
    try:
        pages = int(raw)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"option 'max_pages' must be a whole number from 1 to {FEED_PAGES}, not {raw!r}") from error
    if not 1 <= pages <= FEED_PAGES:
        raise InvalidInput(f"option 'max_pages' must be from 1 to {FEED_PAGES}, not {raw!r}")
    return pages


def _label(entry: Mapping[str, Any], *path: str) -> str:
    value: Any = entry
    for key in (*path, "label"):
        value = value.get(key) if isinstance(value, Mapping) else None
    return str(value).strip() if value is not None else ""


def review_key(entry: Mapping[str, Any]) -> list[Any] | None:
    """(update time in UTC, review id): how reviews are ordered and the cursor's mark; None when unreadable."""
    updated, review_id = parse_timestamp(_label(entry, "updated")), _label(entry, "id")
    if updated is None or updated.tzinfo is None or not review_id.isdigit():
        return None
    return [updated.astimezone(UTC).isoformat(), int(review_id)]


def review_draft(request: PollRequest, entry: Mapping[str, Any], country: str) -> ItemDraft:
    title, content = _label(entry, "title"), _label(entry, "content")
    text = f"{title}\n\n{content}".strip() if content and not content.startswith(title) else (content or title)
    rating = _label(entry, "im:rating")
    metadata: dict[str, Any] = {
        "rating": int(rating) if rating.isdigit() else None, "app_version": _label(entry, "im:version") or None,
        "vote_sum": _int_or_none(_label(entry, "im:voteSum")),
        "vote_count": _int_or_none(_label(entry, "im:voteCount")),
        "country": country, "app_id": str(request.options["app_id"]),
    }
    # In UTC: the feed gives the storefront's offset, and a database without time zones keeps wall-clock time.
    updated = parse_timestamp(_label(entry, "updated"))
    updated = updated.astimezone(UTC) if updated is not None and updated.tzinfo is not None else None
    return ItemDraft(text=text, channel=request.channel_name, external_id=f"review-{_label(entry, 'id')}",
                     author=_label(entry, "author", "name") or None, created_at=updated, updated_at=updated,
                     metadata=metadata, editable_metadata=EDITABLE_METADATA)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _entries(feed: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    entries = feed.get("entry") or []
    if isinstance(entries, Mapping):  # a page with a single entry gives it bare
        entries = [entries]
    return [entry for entry in entries if isinstance(entry, Mapping) and "im:rating" in entry]


def _last_page(feed: Mapping[str, Any]) -> int | None:
    links = feed.get("link") or []
    for link in links if isinstance(links, list) else [links]:
        attributes = link.get("attributes") if isinstance(link, Mapping) else None
        if isinstance(attributes, Mapping) and attributes.get("rel") == "last":
            found = LAST_PAGE.search(str(attributes.get("href") or ""))
            return int(found.group(1)) if found else None
    return None


def _read_page(request: PollRequest, page: int, country: str) -> Mapping[str, Any]:
    base = str(request.options.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{country}/rss/customerreviews/page={page}/id={request.options['app_id']}/sortby=mostrecent/json"
    what = f"app_store channel {request.channel_name!r}"
    _, body = fetch_url(request, what, url, {"Accept": "application/json"})
    try:
        payload = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError) as error:
        raise PollFailed(f"{what}: page {page} is not JSON") from error
    feed = payload.get("feed") if isinstance(payload, Mapping) else None
    if not isinstance(feed, Mapping):
        raise PollFailed(f"{what}: page {page} has no 'feed' object")
    return feed


def fetch(request: PollRequest) -> PollPage:
    """One page of reviews: those newer than the cursor's mark; ``more`` while the mark is not reached."""
    check_options(request.options)
    country = str(request.options.get("country") or "us").lower()
    cursor = dict(request.cursor)
    mark, page = cursor.get("mark"), int(cursor.get("page") or 1)
    feed = _read_page(request, page, country)
    items, top = [], cursor.get("round_top") or mark
    reached = False
    for entry in _entries(feed):
        key = review_key(entry)
        if key is None:
            continue
        if mark is not None and key <= mark:
            reached = True  # newest first: everything from here on was stored in an earlier round
            continue
        top = key if top is None or key > top else top
        draft = review_draft(request, entry, country)
        if draft.text:
            items.append(draft)
    last = min(_last_page(feed) or FEED_PAGES, _max_pages(request.options))
    if reached or not items or page >= last:
        return PollPage(items=items, cursor={"mark": top})
    return PollPage(items=items, cursor={"mark": mark, "round_top": top, "page": page + 1}, more=True)


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="app_store", description="App Store customer reviews of an app, polled",
                         handle_webhook=reject_webhooks,
                         poll=ChannelPoller(fetch=fetch, interval_s=3600.0, check_options=check_options),
                         options=OPTIONS))
