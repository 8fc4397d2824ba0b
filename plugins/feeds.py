"""Built-in intake channel type ``feed``: an RSS or Atom feed, polled (a status page, a forum's or a
tracker's feed, a blog's comments).

The feed is fetched through the outbound policy (``plugins/poll_http.py``) and its bytes parsed with
``feedparser`` (which never fetches anything itself here). Requests are conditional (``If-None-Match`` /
``If-Modified-Since`` from the last answer's ``ETag`` / ``Last-Modified``), so an unchanged feed costs
the source a 304. The cursor remembers the entries of the last fetch (id and update time): an entry not
seen before is a new item, one whose update time changed is an edit, and the others are not stored again.

Options: ``url`` (required: the feed's http(s) URL).
"""

from __future__ import annotations

import calendar
import hashlib
import io
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import feedparser

from core import hookimpl
from core.errors import InvalidInput
from core.types import ChannelPoller, ChannelType, ItemDraft, PollPage, PollRequest, reject_webhooks
from plugins.discourse import text_from_cooked
from plugins.poll_http import PollFailed, fetch_url

OPTIONS = {"url": "the feed's http(s) URL (RSS 2.0, RSS 1.0 or Atom)"}
# Entries remembered from the last fetch: feeds carry their newest 10-100 entries.
MAX_REMEMBERED = 1000
MAX_EXTERNAL_ID = 200


def check_options(options: Mapping[str, Any]) -> None:
    """A feed needs its URL (checked against the outbound policy by ``channels add`` itself)."""
    url = str(options.get("url") or "").strip()
    if not url:
        raise InvalidInput("a feed channel needs the option url=<the feed's URL>")
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput(f"option 'url' must be an http(s) URL, not {url!r}")


def _moment(parsed: Any) -> datetime | None:
    """feedparser's UTC ``struct_time`` as an aware datetime."""
    if not isinstance(parsed, time.struct_time):
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), UTC)


def _own(entry: Mapping[str, Any], key: str) -> Any:
    """The entry's own value, without feedparser's deprecated fallback from ``updated`` to ``published``."""
    return dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)


def entry_key(entry: Mapping[str, Any]) -> str:
    """The entry's stable id: its Atom id or RSS guid, else its link, else a digest of its title and date."""
    raw = str(entry.get("id") or entry.get("link") or "").strip()
    if not raw:
        dated = _own(entry, "published") or _own(entry, "updated") or ""
        raw = f"digest:{entry.get('title', '')}|{dated}"
    if len(raw) <= MAX_EXTERNAL_ID:
        return raw
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()


def entry_text(entry: Mapping[str, Any]) -> str:
    """Title, then the entry's content (or summary) as plain text; quotes and code blocks left out."""
    title = text_from_cooked(str(entry.get("title") or ""))
    contents = entry.get("content") or []
    body_html = contents[0].get("value", "") if contents else entry.get("summary", "")
    body = text_from_cooked(str(body_html or ""))
    if body.startswith(title):  # RSS items without a title repeat their text as one
        return body
    return f"{title}\n\n{body}".strip() if body else title


def entry_draft(request: PollRequest, entry: Mapping[str, Any], feed_title: str | None) -> ItemDraft:
    tags = [str(tag.get("term")) for tag in entry.get("tags") or [] if tag.get("term")]
    metadata: dict[str, Any] = {"feed_title": feed_title, "tags": tags}
    updated = _moment(_own(entry, "updated_parsed"))
    return ItemDraft(
        text=entry_text(entry), channel=request.channel_name, external_id=entry_key(entry),
        author=str(entry["author"]) if entry.get("author") else None,
        url=str(entry["link"]) if entry.get("link") else None,
        created_at=_moment(entry.get("published_parsed")) or updated, updated_at=updated,
        metadata=metadata, editable_metadata=frozenset({"tags"}),
    )


def fetch(request: PollRequest) -> PollPage:
    """One conditional GET of the feed; the entries not in the cursor, and the new cursor."""
    check_options(request.options)
    cursor = dict(request.cursor)
    headers = {"Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.1"}
    if cursor.get("etag"):
        headers["If-None-Match"] = str(cursor["etag"])
    if cursor.get("modified"):
        headers["If-Modified-Since"] = str(cursor["modified"])
    what = f"feed channel {request.channel_name!r}"
    response, body = fetch_url(request, what, str(request.options["url"]).strip(), headers)
    if response.status_code == 304:
        return PollPage(cursor=cursor)
    parsed = feedparser.parse(io.BytesIO(body), response_headers={
        "content-type": response.headers.get("content-type", "application/xml")})
    if parsed.bozo and not parsed.entries:
        raise PollFailed(f"{what}: the answer is not an RSS or Atom feed ({parsed.get('bozo_exception')})")
    seen: dict[str, str] = dict(cursor.get("seen") or {})
    items, now_seen = [], {}
    for entry in parsed.entries[:MAX_REMEMBERED]:
        key = entry_key(entry)
        version = str(_own(entry, "updated") or _own(entry, "published") or "")
        now_seen[key] = version
        if key not in seen or seen[key] != version:
            draft = entry_draft(request, entry, parsed.feed.get("title"))
            if draft.text:
                items.append(draft)
    new_cursor = {"etag": response.headers.get("etag"), "modified": response.headers.get("last-modified"),
                  "seen": now_seen}
    return PollPage(items=items, cursor=new_cursor)


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="feed", description="RSS or Atom feed, polled", handle_webhook=reject_webhooks,
                         poll=ChannelPoller(fetch=fetch, interval_s=900.0, check_options=check_options),
                         options=OPTIONS))
