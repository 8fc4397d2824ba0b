"""Built-in polled channel type ``reddit``: new posts of a subreddit or a search, and optionally its comments.

Through praw (application-only OAuth, the client-credentials grant of a "script" or "web" app): each fetch
makes one listing request with a fresh ``praw.Reddit`` on a ``GuardedSession`` (plugins/polled_requests.py),
so every URL it calls, the token endpoint included, obeys the outbound policy, and prawcore's own pacing
never sleeps (it only waits between requests of one instance). prawcore raises on 429 without retrying; that
becomes ``PollThrottled`` with ``Retry-After`` or ``X-Ratelimit-Reset``. A successful answer with
``X-Ratelimit-Remaining: 0`` puts the reset time in the cursor, and nothing is asked before it.

The cursor holds, per listing (posts, comments), the newest fullname stored (``anchor``) and its
``created_utc``. A poll asks for ``before=<anchor>``: Reddit answers the posts just newer than it, newest
first; a full page means more are waiting, and the next page asks ``before=<newest of this page>``. Each page
is its own cursor, committed with its items, so a poller killed between pages asks for nothing twice. Walking
down with ``after`` from the newest post would need a second bookmark for the half-walked sweep. The first
poll takes the newest page only (no backfill). Reddit answers an empty page to a ``before`` whose post was
removed by moderators, which looks like "nothing new": after ``REANCHOR_AFTER`` empty polls in a row the next
one asks for the newest page without ``before`` and keeps what is newer than the anchor's time.

Items: posts ``t3_...`` (title and self text), comments ``t1_...``; posts and comments whose author or text
is ``[deleted]``/``[removed]``, or that moderators removed, are not feedback. The author is the Reddit
username (pseudonymised by the core); metadata: ``thread`` (the post's fullname), ``opens_thread``,
``subreddit``, ``score``, ``staff`` (distinguished as moderator or admin).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import praw
import prawcore

from core import hookimpl
from core.errors import ConfigurationError, FeedbackloopError, InvalidInput
from core.outbound import check_url
from core.secrets import secret_from_env
from core.types import ChannelPoller, ChannelType, ItemDraft, PollPage, PollRequest, reject_webhooks
from plugins.polled_requests import NOT_BEFORE, GuardedSession, bounded_int, flag, not_before, throttled, wait_if_told

SOURCE = "Reddit"
OAUTH_URL = "https://oauth.reddit.com"
REDDIT_URL = "https://www.reddit.com"
# Links are for people: the public site, whatever API host the channel calls.
PERMALINK_BASE = "https://www.reddit.com"
REMAINING_HEADER = "X-Ratelimit-Remaining"
RESET_HEADER = "X-Ratelimit-Reset"
REANCHOR_AFTER = 12
SUBREDDIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}(\+[A-Za-z0-9][A-Za-z0-9_]{1,20})*$")
MAX_QUERY = 512
GONE = {"[deleted]", "[removed]"}
STAFF = {"moderator", "admin"}
EDITABLE_METADATA = frozenset({"score"})
OPTIONS = {
    "subreddit": "subreddit name (or a+b) whose new posts are read; with search, the search stays inside it",
    "search": "search query: new posts matching it (all of Reddit, or the subreddit)",
    "comments": "true: also the subreddit's new comments (needs subreddit, not search; default false)",
    "client_id": "the Reddit app's client id (reddit.com/prefs/apps)",
    "client_secret_env": "environment variable holding the app's secret (default: the channel's --secret-env)",
    "user_agent": "the User-Agent Reddit asks for, e.g. 'feedbackloop:acme-feedback:1.0 (by /u/acme)'",
    "limit": "posts per page, 1 to 100 (default 100)",
    "oauth_url": f"Reddit's API (default {OAUTH_URL})",
    "reddit_url": f"where tokens come from (default {REDDIT_URL})",
}


def check_options(options: Mapping[str, Any]) -> None:
    """Refuse options that cannot make a Reddit poll, naming the option."""
    subreddit, search = options.get("subreddit"), options.get("search")
    if not subreddit and not search:
        raise InvalidInput("a reddit channel needs the option 'subreddit' or 'search'")
    if subreddit and not SUBREDDIT.match(str(subreddit).removeprefix("r/")):
        raise InvalidInput(f"option 'subreddit': {str(subreddit)[:40]!r} is not a subreddit name")
    if search is not None and not 0 < len(str(search).strip()) <= MAX_QUERY:
        raise InvalidInput(f"option 'search' must be 1 to {MAX_QUERY} characters")
    if flag(options, "comments") and (search or not subreddit):
        raise InvalidInput("option 'comments' needs 'subreddit' and no 'search' (Reddit's search finds posts only)")
    if not options.get("client_id"):
        raise InvalidInput("a reddit channel needs the option 'client_id' (the app's id on reddit.com/prefs/apps)")
    bounded_int(options, "limit", 100, 1, 100)


def _listings(options: Mapping[str, Any]) -> list[str]:
    return ["posts", "comments"] if flag(options, "comments") else ["posts"]


def _path_and_params(options: Mapping[str, Any], listing: str) -> tuple[str, dict[str, str | int]]:
    subreddit = str(options.get("subreddit") or "").removeprefix("r/")
    if listing == "comments":
        return f"/r/{subreddit}/comments", {}
    if options.get("search"):
        params: dict[str, str | int] = {"q": str(options["search"]).strip(), "sort": "new", "type": "link"}
        if subreddit:
            params["restrict_sr"] = "on"
        return (f"/r/{subreddit}/search" if subreddit else "/search"), params
    return f"/r/{subreddit}/new", {}


def _reddit(request: PollRequest, session: GuardedSession) -> praw.Reddit:
    options = request.options
    secret = request.secret or secret_from_env(options, "client_secret_env", f"channel {request.channel_name!r}",
                                               request.settings)
    urls = {key: str(options.get(key) or default) for key, default in (("oauth_url", OAUTH_URL),
                                                                        ("reddit_url", REDDIT_URL))}
    for key, url in urls.items():  # checked before each fetch; the session checks every request again
        check_url(url, request.settings, f"channel {request.channel_name!r}: option {key!r}")
    user_agent = str(options.get("user_agent") or f"feedbackloop:{request.channel_name}:1 (polling)")
    # Every setting praw would otherwise read from praw.ini or praw_* variables is given here, so neither can
    # send the secret elsewhere or switch to a password login.
    return praw.Reddit(client_id=str(options["client_id"]), client_secret=secret, user_agent=user_agent,
                       username=None, password=None, refresh_token=None, redirect_uri=None,
                       check_for_updates=False, check_for_async=False, requestor_kwargs={"session": session},
                       oauth_url=urls["oauth_url"], reddit_url=urls["reddit_url"])


def _get(request: PollRequest, path: str, params: dict[str, str | int]) -> tuple[Any, GuardedSession]:
    session = GuardedSession(request.settings, f"channel {request.channel_name!r}")
    try:
        reddit = _reddit(request, session)
        return reddit.request(method="GET", path=path, params=params), session
    except prawcore.ResponseException as error:
        status = error.response.status_code
        if status == 429:
            raise throttled(SOURCE, error.response, RESET_HEADER) from error
        if status in (401, 403):
            raise ConfigurationError(f"channel {request.channel_name!r}: Reddit refused the app's credentials "
                                     f"or this listing ({status})") from error
        raise FeedbackloopError(f"channel {request.channel_name!r}: Reddit answered {status}",
                                status_code=502) from error
    except prawcore.OAuthException as error:  # the token endpoint said no in its body (invalid_grant...)
        raise ConfigurationError(f"channel {request.channel_name!r}: Reddit refused the app's credentials "
                                 f"({error})") from error
    except (prawcore.PrawcoreException, praw.exceptions.PRAWException) as error:
        if session.refused is not None:
            raise session.refused from error
        raise FeedbackloopError(f"channel {request.channel_name!r}: Reddit could not be reached ({error})",
                                status_code=502) from error
    finally:
        session.close()


def _listing_request(request: PollRequest, listing: str, limit: int) -> tuple[str, dict[str, str | int], str,
                                                                               dict[str, Any], bool]:
    """Path, query, source and stored state of one listing; ``before`` the anchor unless re-anchoring."""
    path, params = _path_and_params(request.options, listing)
    # What the anchor belongs to: a changed subreddit or query starts afresh rather than asking before= a
    # post of another listing.
    source = " ".join([path, *(f"{key}={value}" for key, value in sorted(params.items()))])
    state = dict(request.cursor.get(listing) or {})
    if state.get("source") != source:
        state = {}
    params["limit"] = limit
    reanchor = int(state.get("empty", 0)) >= REANCHOR_AFTER
    if state.get("anchor") and not reanchor:
        params["before"] = str(state["anchor"])
    return path, params, source, state, reanchor


def fetch(request: PollRequest) -> PollPage:
    """One listing page newer than the stored anchor (see the module docstring)."""
    check_options(request.options)
    wait_if_told(SOURCE, request.cursor)
    listings = _listings(request.options)
    listing = str(request.cursor.get("next") or listings[0])
    listing = listing if listing in listings else listings[0]
    limit = bounded_int(request.options, "limit", 100, 1, 100)
    path, params, source, state, reanchor = _listing_request(request, listing, limit)
    answer, session = _get(request, path, params)
    children = _children(answer)
    anchor_utc = float(state.get("utc") or 0)
    fresh = [thing for thing in children
             if float(thing.get("created_utc") or 0) >= anchor_utc and thing.get("name") != state.get("anchor")]
    cursor: dict[str, Any] = {key: request.cursor[key] for key in listings if key in request.cursor}
    cursor[listing] = {**_next_state(state, children, reanchor), "source": source}
    # A full page: more of this listing is waiting; otherwise the next listing, then back to the first.
    full = len(children) >= limit and not reanchor
    position = listings.index(listing)
    cursor["next"] = listing if full else listings[(position + 1) % len(listings)]
    until = not_before(session.last_response, REMAINING_HEADER, RESET_HEADER)
    if until is not None:
        cursor[NOT_BEFORE] = until
    items = [draft for draft in (_draft(request.channel_name, thing) for thing in fresh) if draft is not None]
    return PollPage(items=items, cursor=cursor, more=full or position + 1 < len(listings))


def _next_state(state: dict[str, Any], children: list[dict[str, Any]], reanchor: bool) -> dict[str, Any]:
    if children:
        return {"anchor": children[0].get("name"), "utc": float(children[0].get("created_utc") or 0), "empty": 0}
    if not state.get("anchor"):
        return state
    return {**state, "empty": 0 if reanchor else int(state.get("empty", 0)) + 1}


def _children(answer: Any) -> list[dict[str, Any]]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("children"), list):
        raise FeedbackloopError("Reddit answered something that is not a listing", status_code=502)
    return [child["data"] for child in data["children"]
            if isinstance(child, dict) and child.get("kind") in ("t1", "t3") and isinstance(child.get("data"), dict)]


def _gone(thing: dict[str, Any], text: str) -> bool:
    return (str(thing.get("author") or "[deleted]") in GONE or text.strip() in GONE
            or bool(thing.get("removed_by_category")))


def _draft(channel: str, thing: dict[str, Any]) -> ItemDraft | None:
    name = str(thing.get("name") or "")
    is_post = name.startswith("t3_")
    if is_post:
        selftext = str(thing.get("selftext") or "").strip()
        title = str(thing.get("title") or "").strip()
        text = f"{title}\n\n{selftext}" if selftext and selftext not in GONE else title
        gone = _gone(thing, title) or selftext in GONE
    else:
        text = str(thing.get("body") or "").strip()
        gone = _gone(thing, text)
    if gone or not text or not name:
        return None
    edited = thing.get("edited")
    permalink = str(thing.get("permalink") or "")
    return ItemDraft(
        text=text, channel=channel, external_id=name, author=str(thing["author"]),
        url=PERMALINK_BASE + permalink if permalink.startswith("/") else None,
        created_at=_moment(thing.get("created_utc")),
        updated_at=_moment(edited) if isinstance(edited, int | float) and not isinstance(edited, bool) else None,
        metadata={
            "thread": name if is_post else str(thing.get("link_id") or ""),
            "opens_thread": is_post,
            "subreddit": thing.get("subreddit"),
            "score": thing.get("score"),
            "staff": thing.get("distinguished") in STAFF,
        },
        editable_metadata=EDITABLE_METADATA,
    )


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@hookimpl
def register_channel_types(register: Any) -> None:
    register(ChannelType(
        name="reddit",
        description="Reddit: new posts (and comments) of a subreddit or a search, polled",
        handle_webhook=reject_webhooks,
        poll=ChannelPoller(fetch=fetch, interval_s=300.0, check_options=check_options),
        options=OPTIONS,
    ))
