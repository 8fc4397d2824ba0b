"""Built-in intake channel type ``discourse``: a Discourse forum's webhook (posts and topics).

Point a Discourse webhook (Admin > API > Webhooks, content type ``application/json``, with a secret)
at ``/webhooks/NAME``. Handled events: ``post_created``, ``post_edited``, ``post_recovered``,
``post_destroyed``, ``topic_created``, ``topic_edited``, ``topic_recovered``, ``topic_destroyed``;
anything else (``ping``, user events, plugin events such as ``accepted_solution``) is ignored.

A topic's opening post and the topic itself are one item (``topic-<id>``): the topic event brings the
title, category and tags, the post event the text. Replies are ``post-<id>``. Text comes from ``raw``
(quotes and code blocks removed: they are someone else's words or logs, not this customer's
feedback), falling back to ``cooked`` HTML stripped the same way.

Options: ``exclude_staff`` (default false), ``exclude_bots`` (default true), ``exclude_categories``
(comma-separated category ids or slugs), ``allow_unsigned`` (trusted networks only), ``forum_url`` (the
forum's base URL for links to posts; default ``reply_url``). Discourse signs the body only: its headers
(``X-Discourse-Instance``, the event id) are not taken as data, and no host comes from them.

Metadata follows the community conventions: ``thread`` (``topic-<id>``), ``opens_thread`` (the opening
post) and ``staff`` (staff, admin or moderator; left out with ``exclude_staff``). Staff posts are stored
for the community figures (core/community/vitality.py: staff answers) but kept out of themes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from html import unescape
from html.parser import HTMLParser
from typing import Any

from core import hookimpl
from core.clock import parse_timestamp
from core.types import ChannelType, IntakeResult, ItemDraft, ThreadReplies, WebhookRejected, WebhookRequest
from plugins.discourse_reply import forum_url, opener_id, post_reply, thread_of
from plugins.webhook_signing import UNSIGNED_OPTION, delivery_key, parse_json, split_option, truthy, verify

SIGNATURE_HEADER = "X-Discourse-Event-Signature"
OPTIONS = {
    **UNSIGNED_OPTION,
    "exclude_staff": "true: skip posts by staff, admins and moderators (default false)",
    "exclude_bots": "false: keep posts by bots and Discourse's system users (default true)",
    "exclude_categories": "comma-separated category ids or slugs to skip",
    "forum_url": "the forum's base URL, for links to posts (default reply_url)",
    "reply_url": "the forum's base URL for replies that close the loop (default forum_url)",
    "reply_api_key_env": "environment variable holding the API key replies are posted with",
    "reply_username": "the user replies are posted as (default system)",
}
POST_EVENTS = {"post_created", "post_edited", "post_recovered", "post_destroyed"}
TOPIC_EVENTS = {"topic_created", "topic_edited", "topic_recovered", "topic_destroyed"}
# Discourse's own automated users have negative ids (system is -1, discobot -2).
BOT_USERNAMES = {"system", "discobot"}
BBCODE_QUOTE = re.compile(r"\[quote(?:=[^\]]*)?\].*?\[/quote\]", re.IGNORECASE | re.DOTALL)
FENCED_CODE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
SKIPPED_HTML = {"aside", "blockquote", "pre"}
# What an edit on the forum may change on a stored item; the instance, topic and post number never move.
EDITABLE_METADATA = frozenset({"topic_title", "category_id", "category_slug", "tags", "trust_level"})


class _TextOfCooked(HTMLParser):
    """Visible text of Discourse's cooked HTML, without quoted posts and code blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED_HTML:
            self.skipping += 1
        elif tag in {"p", "br", "li", "div", "h1", "h2", "h3", "h4"} and not self.skipping:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED_HTML and self.skipping:
            self.skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def text_from_cooked(cooked: str) -> str:
    parser = _TextOfCooked()
    parser.feed(cooked)
    parser.close()
    return _tidy(unescape("".join(parser.parts)))


def text_from_raw(raw: str) -> str:
    return _tidy(FENCED_CODE.sub("", BBCODE_QUOTE.sub("", raw)))


def _tidy(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def post_text(post: dict[str, Any]) -> str:
    if isinstance(post.get("raw"), str) and post["raw"].strip():
        return text_from_raw(post["raw"])
    if isinstance(post.get("cooked"), str):
        return text_from_cooked(post["cooked"])
    return ""



def _category_excluded(options: Any, category_id: Any, category_slug: Any) -> bool:
    excluded = split_option(options, "exclude_categories")
    return bool(excluded & {str(category_id).lower(), str(category_slug or "").lower()} - {"", "none"})


def _is_bot(user_id: Any, username: Any) -> bool:
    return (isinstance(user_id, int) and user_id < 0) or str(username or "").lower() in BOT_USERNAMES


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    verify(request.secret, request.body, request.headers, SIGNATURE_HEADER, request.options)
    event = request.headers.get("x-discourse-event", "")
    if not event:
        raise WebhookRejected(400, "missing X-Discourse-Event header")
    if event not in POST_EVENTS | TOPIC_EVENTS:  # decided before parsing: a ping needs nothing from the body
        return IntakeResult(ignored=f"Discourse event {event!r} is not feedback")
    payload = parse_json(request.body)
    # Links point at the forum an admin configured, never at the unsigned X-Discourse-Instance header.
    instance = forum_url(request.options, "forum_url", "reply_url") or ""
    if event in POST_EVENTS:
        result = _post_event(request, event, _section(payload, "post"), instance)
    else:
        result = _topic_event(request, event, _section(payload, "topic"), instance)
    result.delivery_id = delivery_key(request.headers.get("x-discourse-event-id"), request.body)
    return result


def _section(payload: Any, key: str) -> dict[str, Any]:
    section = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(section, dict):
        raise WebhookRejected(400, f"a Discourse {key} event needs a {key!r} object in the body")
    return section


def _post_event(request: WebhookRequest, event: str, post: dict[str, Any], instance: str) -> IntakeResult:
    if post.get("id") is None or post.get("topic_id") is None:
        raise WebhookRejected(400, "the post has no 'id' or 'topic_id'")
    opening = post.get("post_number") == 1
    external_id = f"topic-{post['topic_id']}" if opening else f"post-{post['id']}"
    # The event name is an unsigned header; the body is signed. A deletion counts only when the signed
    # post says it is deleted, so a captured post_created body relabelled as post_destroyed deletes nothing.
    if event == "post_destroyed":
        if not post.get("deleted_at"):
            return IntakeResult(ignored=f"post_destroyed for post {post['id']}, whose body has no deleted_at")
        return IntakeResult(deleted_ids=[external_id])
    if post.get("deleted_at"):
        return IntakeResult(ignored=f"post {post['id']} is deleted")
    ignored = _ignored_post(request.options, post)
    if ignored is not None:
        return IntakeResult(ignored=ignored)
    text = post_text(post)
    if not text:
        return IntakeResult(ignored=f"post {post['id']} carries no text (no 'raw' or 'cooked')")
    if opening and post.get("topic_title"):  # the opening post is the topic: its title is part of what was said
        text = f"{post['topic_title']}\n\n{text}"
    slug = post.get("topic_slug") or "-"
    metadata = {**_post_metadata(post), **_community_metadata(request.options, post, opening)}
    draft = ItemDraft(
        text=text, channel=request.channel_name, external_id=external_id, author=post.get("username"),
        url=f"{instance}/t/{slug}/{post['topic_id']}/{post.get('post_number', '')}".rstrip("/") if instance else None,
        created_at=parse_timestamp(post.get("created_at")), metadata=metadata,
        updated_at=parse_timestamp(post.get("updated_at")), editable_metadata=EDITABLE_METADATA,
    )
    restored = [external_id] if event == "post_recovered" else []
    return IntakeResult(items=[draft], restored_ids=restored)


def _ignored_post(options: Mapping[str, Any], post: dict[str, Any]) -> str | None:
    """Why the post is not feedback (its author, its category or its kind), if so."""
    if truthy(options.get("exclude_bots", True)) and _is_bot(post.get("user_id"), post.get("username")):
        return "post by a bot"
    if truthy(options.get("exclude_staff", False)) and (post.get("staff") or post.get("admin")
                                                        or post.get("moderator")):
        return "post by staff"
    if _category_excluded(options, post.get("category_id"), post.get("category_slug")):
        return f"category {post.get('category_slug') or post.get('category_id')} is excluded"
    if post.get("post_type") not in (None, 1):  # 2 moderator action, 3 small action, 4 whisper
        return "not a regular post"
    return None


def _community_metadata(options: Mapping[str, Any], post: dict[str, Any], opening: bool) -> dict[str, Any]:
    """The thread conventions (docs/plugins.md); ``staff`` only where staff posts are kept, so a channel that
    drops them says nothing about staff rather than that nobody is."""
    found: dict[str, Any] = {"thread": f"topic-{post['topic_id']}", "opens_thread": opening}
    if not truthy(options.get("exclude_staff", False)):
        found["staff"] = bool(post.get("staff") or post.get("admin") or post.get("moderator"))
    return found


def _post_metadata(post: dict[str, Any]) -> dict[str, Any]:
    metadata = {
        "topic_id": post.get("topic_id"),
        "topic_title": post.get("topic_title"),
        "category_id": post.get("category_id"),
        "category_slug": post.get("category_slug"),
        "post_number": post.get("post_number"),
        "trust_level": post.get("trust_level"),
    }
    tags = post.get("topic_tags", post.get("tags"))
    if isinstance(tags, list):
        metadata["tags"] = [str(tag.get("name") if isinstance(tag, dict) else tag) for tag in tags]
    return metadata


def _topic_event(request: WebhookRequest, event: str, topic: dict[str, Any], instance: str) -> IntakeResult:
    options = request.options
    if topic.get("id") is None:
        raise WebhookRejected(400, "the topic has no 'id'")
    external_id = f"topic-{topic['id']}"
    if event == "topic_destroyed":  # as for posts: the signed body must agree with the unsigned event name
        if not topic.get("deleted_at"):
            return IntakeResult(ignored=f"topic_destroyed for topic {topic['id']}, whose body has no deleted_at")
        return IntakeResult(deleted_ids=[external_id])
    if topic.get("deleted_at"):
        return IntakeResult(ignored=f"topic {topic['id']} is deleted")
    if topic.get("archetype") not in (None, "regular"):  # private messages are not public feedback
        return IntakeResult(ignored=f"topic archetype {topic.get('archetype')!r}")
    created_by = topic.get("created_by")
    creator: dict[str, Any] = created_by if isinstance(created_by, dict) else {}
    author_id = creator.get("id", topic.get("user_id"))
    if truthy(options.get("exclude_bots", True)) and _is_bot(author_id, creator.get("username")):
        return IntakeResult(ignored="topic by a bot")
    if _category_excluded(options, topic.get("category_id"), topic.get("category_slug")):
        return IntakeResult(ignored=f"category {topic.get('category_id')} is excluded")
    title = str(topic.get("title") or topic.get("fancy_title") or "").strip()
    if not title:
        return IntakeResult(ignored=f"topic {topic['id']} has no title")
    metadata = {
        "topic_id": topic["id"],
        "thread": external_id,
        "opens_thread": True,
        "topic_title": title,
        "category_id": topic.get("category_id"),
        "tags": [str(tag.get("name") if isinstance(tag, dict) else tag) for tag in topic.get("tags") or []],
    }
    # Partial: the topic event has the title but not the opening post's text; if the post is already
    # stored this only adds the title, category and tags to it.
    draft = ItemDraft(
        text=title, channel=request.channel_name, external_id=external_id, author=creator.get("username"),
        url=f"{instance}/t/{topic.get('slug') or '-'}/{topic['id']}" if instance else None,
        created_at=parse_timestamp(topic.get("created_at")), metadata=metadata, partial=True,
        editable_metadata=EDITABLE_METADATA,
    )
    return IntakeResult(items=[draft], restored_ids=[external_id] if event == "topic_recovered" else [])


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="discourse", description="Discourse forum webhook (posts and topics)",
                         handle_webhook=handle_webhook,
                         replies=ThreadReplies(thread_of=thread_of, post=post_reply, opener_id=opener_id),
                         options=OPTIONS))
