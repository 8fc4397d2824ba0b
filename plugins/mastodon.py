"""Built-in polled channel type ``mastodon``: a hashtag's public posts, or the mentions of an account.

Through Mastodon.py with ``ratelimit_method="throw"`` (it neither sleeps nor retries: a 429 raises at once,
and becomes ``PollThrottled`` with ``Retry-After`` or ``X-RateLimit-Reset``), on a ``GuardedSession``
(plugins/polled_requests.py), so every request obeys the outbound policy; ``api_base_url`` comes from the
channel's options only. A successful answer with ``X-RateLimit-Remaining: 0`` puts the reset time in the
cursor, and nothing is asked before it.

The cursor is ``min_id``: Mastodon answers the posts immediately newer than it (newest first), and its
``Link`` header's ``rel="prev"`` carries the ``min_id`` of the next newer page. A full page means more are
waiting. Each page is its own cursor, committed with its items, so a poller killed between pages asks for
nothing twice. The first poll takes the newest page only (no backfill). ``since_id`` would answer the newest
page and skip what lies between, so it is not used. With ``mentions`` the ids are notification ids.

Items: the status's HTML content as text (mention links, which name other people, left out; a content
warning first), keyed by the status id; boosts, bots and direct messages (unless ``include_direct``) are
not feedback. The author is the account's ``user@instance``; metadata: ``thread`` (the status it replies to,
else its own id), ``opens_thread``, ``language``, ``tags``, ``visibility``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from html import unescape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mastodon import (
    Mastodon,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)

from core import hookimpl
from core.clock import aware, parse_timestamp
from core.errors import ConfigurationError, FeedbackloopError, InvalidInput
from core.outbound import check_url
from core.secrets import optional_secret_from_env, secret_from_env
from core.types import ChannelPoller, ChannelType, ItemDraft, PollPage, PollRequest, reject_webhooks
from plugins.polled_requests import NOT_BEFORE, GuardedSession, bounded_int, flag, not_before, throttled, wait_if_told

SOURCE = "Mastodon"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"
HASHTAG = re.compile(r"^\w{1,100}$")
EDITABLE_METADATA = frozenset({"tags"})
OPTIONS = {
    "api_base_url": "the Mastodon server, e.g. https://mastodon.social (required)",
    "hashtag": "a hashtag (without #) whose public posts are read",
    "mentions": "true: the posts that mention the account of access_token_env (its notifications)",
    "access_token_env": "environment variable holding an access token (read:notifications for mentions; "
                        "default: the channel's --secret-env)",
    "include_direct": "true: also direct messages that mention the account (default false)",
    "limit": "posts per page, 1 to 40 (default 40)",
}


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse options that cannot make a Mastodon poll, naming the option."""
    if not options.get("api_base_url"):
        raise InvalidInput("a mastodon channel needs the option 'api_base_url' (e.g. https://mastodon.social)")
    if not str(options["api_base_url"]).startswith(("https://", "http://")):
        raise InvalidInput("option 'api_base_url' must be an http(s) URL, e.g. https://mastodon.social")
    hashtag, mentions = options.get("hashtag"), flag(options, "mentions")
    if bool(hashtag) == mentions:
        raise InvalidInput("a mastodon channel needs exactly one of the options 'hashtag' and 'mentions=true'")
    if hashtag and not HASHTAG.match(str(hashtag).removeprefix("#")):
        raise InvalidInput(f"option 'hashtag': {str(hashtag)[:40]!r} is not a hashtag (letters, digits, _)")
    flag(options, "include_direct")
    bounded_int(options, "limit", 40, 1, 40)


class _TextOfContent(HTMLParser):
    """Visible text of a status's HTML, without mention links and the hidden parts of shortened links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[bool] = []  # per open tag: whether its text is left out

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = set(str(dict(attrs).get("class") or "").split())
        skipped = ("mention" in classes and "hashtag" not in classes) or "invisible" in classes
        if tag in {"br", "p"} and not self.skipping:
            self.parts.append("\n")
        if tag not in {"br", "img", "hr"}:
            self.open.append(skipped)

    def handle_endtag(self, tag: str) -> None:
        if tag not in {"br", "img", "hr"} and self.open:
            self.open.pop()

    @property
    def skipping(self) -> bool:
        return any(self.open)

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def text_of_content(content: str) -> str:
    """A status's HTML content as plain text (what the author wrote, without the people it mentions)."""
    parser = _TextOfContent()
    parser.feed(content)
    parser.close()
    lines = [" ".join(line.split()) for line in unescape("".join(parser.parts)).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _client(request: PollRequest, session: GuardedSession) -> Mastodon:
    options, what = request.options, f"channel {request.channel_name!r}"
    base_url = str(options["api_base_url"]).rstrip("/")
    check_url(base_url, request.settings, f"{what}: option 'api_base_url'")  # the session checks every request too
    token: str | None = request.secret
    if token is None and flag(options, "mentions"):
        token = secret_from_env(options, "access_token_env", what, request.settings)
    elif token is None:
        token = optional_secret_from_env(options, "access_token_env", what, request.settings)
    return Mastodon(access_token=token, api_base_url=base_url, ratelimit_method="throw", session=session,
                    version_check_mode="none", request_timeout=30, user_agent="feedbackloop (polling)")


def _statuses(request: PollRequest, min_id: str | None, limit: int) -> tuple[list[Any], GuardedSession]:
    session = GuardedSession(request.settings, f"channel {request.channel_name!r}")
    what = f"channel {request.channel_name!r}"
    try:
        api = _client(request, session)
        if flag(request.options, "mentions"):
            answer = api.notifications(types=["mention"], min_id=min_id, limit=limit)
        else:
            # timeline_hashtag() first asks /api/v2/instance whether hashtag feeds are public, a request per
            # fetch; Mastodon.py's pagination dict (its documented way to resume a stored page) asks only this.
            tag = str(request.options["hashtag"]).removeprefix("#")
            page: dict[str, Any] = {"_pagination_method": "GET", "_pagination_endpoint": f"/api/v1/timelines/tag/{tag}",
                                    "limit": limit}
            if min_id is not None:
                page["min_id"] = min_id
            answer = api.fetch_previous(page) or []
        return list(answer), session
    except MastodonRatelimitError as error:
        raise throttled(SOURCE, session.last_response, RESET_HEADER) from error
    except MastodonUnauthorizedError as error:
        raise ConfigurationError(f"{what}: the Mastodon server refused the access token") from error
    except MastodonNotFoundError as error:
        raise ConfigurationError(f"{what}: the Mastodon server has no such API (is api_base_url right?)") from error
    except MastodonNetworkError as error:
        if session.refused is not None:
            raise session.refused from error
        raise FeedbackloopError(f"{what}: the Mastodon server could not be reached ({error})",
                                status_code=502) from error
    except MastodonError as error:
        raise FeedbackloopError(f"{what}: the Mastodon server answered an error ({error})", status_code=502) from error
    finally:
        session.close()


def _source(options: Mapping[str, Any]) -> str:
    """What the cursor's ids belong to: changing the hashtag or the mode starts afresh."""
    base = str(options["api_base_url"]).rstrip("/")
    return f"{base} mentions" if flag(options, "mentions") else f"{base} #{str(options['hashtag']).removeprefix('#')}"


def fetch(request: PollRequest) -> PollPage:
    """One page of posts newer than the stored ``min_id`` (see the module docstring)."""
    check_options(request.options)
    wait_if_told(SOURCE, request.cursor)
    source = _source(request.options)
    min_id = str(request.cursor["min_id"]) if request.cursor.get("source") == source and \
        request.cursor.get("min_id") else None
    limit = bounded_int(request.options, "limit", 40, 1, 40)
    entries, session = _statuses(request, min_id, limit)
    cursor: dict[str, Any] = {"source": source}
    newest = _newer_min_id(session, entries) or min_id
    if newest:
        cursor["min_id"] = newest
    until = not_before(session.last_response, REMAINING_HEADER, RESET_HEADER)
    if until is not None:
        cursor[NOT_BEFORE] = until
    statuses = [entry.get("status") for entry in entries] if flag(request.options, "mentions") else entries
    items = [draft for draft in (_draft(request, status) for status in statuses if isinstance(status, dict))
             if draft is not None]
    return PollPage(items=items, cursor=cursor, more=len(entries) >= limit)


def _newer_min_id(session: GuardedSession, entries: list[Any]) -> str | None:
    """The next page's ``min_id``: the Link header's ``rel="prev"``, never older than this page's newest id."""
    if not entries:
        return None
    candidates = [str(entry.get("id")) for entry in entries]
    response = session.last_response
    prev = response.links.get("prev", {}).get("url") if response is not None else None
    if prev:
        candidates += parse_qs(urlsplit(prev).query).get("min_id", [])[:1]
    # Mastodon's ids are decimal snowflakes as strings: the longer one is newer, then the larger.
    return max(candidates, key=lambda known: (len(known), known))


def _not_feedback(request: PollRequest, status: Mapping[str, Any], account: Any) -> bool:
    """A boost repeats someone else's post, bots are not customers, a direct message is private unless asked."""
    if not isinstance(account, dict) or not account.get("acct") or not status.get("id"):
        return True
    if status.get("reblog") or account.get("bot"):
        return True
    return status.get("visibility") == "direct" and not flag(request.options, "include_direct")


def _text(status: Mapping[str, Any]) -> str:
    text = text_of_content(str(status.get("content") or ""))
    warning = str(status.get("spoiler_text") or "").strip()
    return f"{warning}\n\n{text}" if warning and text else text or warning


def _draft(request: PollRequest, status: Mapping[str, Any]) -> ItemDraft | None:
    account = status.get("account")
    if _not_feedback(request, status, account):
        return None
    text = _text(status)
    if not text:
        return None
    acct = str(status["account"]["acct"])
    if "@" not in acct:  # a local account: its instance is the server the channel reads
        acct = f"{acct}@{urlsplit(str(request.options['api_base_url'])).hostname}"
    reply_to = status.get("in_reply_to_id")
    tags = [str(tag.get("name")) for tag in status.get("tags") or [] if isinstance(tag, dict) and tag.get("name")]
    return ItemDraft(
        text=text, channel=request.channel_name, external_id=str(status["id"]), author=acct,
        url=str(status.get("url") or status.get("uri") or "") or None,
        created_at=_moment(status.get("created_at")), updated_at=_moment(status.get("edited_at")),
        metadata={"thread": str(reply_to or status["id"]), "opens_thread": reply_to is None,
                  "language": status.get("language"), "tags": tags, "visibility": status.get("visibility")},
        editable_metadata=EDITABLE_METADATA,
    )


def _moment(value: Any) -> datetime | None:
    """Mastodon.py hands back datetimes; a plain ISO string (an older server's shape) is read too."""
    return aware(value) if isinstance(value, datetime) else aware(parse_timestamp(value))


@hookimpl
def register_channel_types(register: Any) -> None:
    register(ChannelType(
        name="mastodon",
        description="Mastodon: a hashtag's public posts, or an account's mentions, polled",
        handle_webhook=reject_webhooks,
        poll=ChannelPoller(fetch=fetch, interval_s=300.0, check_options=check_options),
        options=OPTIONS,
    ))
