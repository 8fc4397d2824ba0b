"""Built-in intake channel type ``teams``: a Microsoft Teams outgoing webhook (an @mention in a channel).

In Teams, Manage team > Apps > Create an outgoing webhook, with ``/webhooks/NAME`` as its callback URL;
the security token Teams shows once is the channel's secret. Teams sends each message that @mentions the
webhook as a Bot Framework Activity and signs it: ``Authorization: HMAC <base64(HMAC-SHA256(
base64decode(token), raw body))>``. The body alone is signed (no time): a captured request stays valid,
so the activity id, inside the signed body, is the delivery id and a replay is answered as a redelivery.

The message text, without the ``<at>...</at>`` mentions (the webhook's own name and people's names) and
its HTML, is stored as ``message-<activity id>``, marked ``internal`` (a team's members are the
company's people, unless the channel sets ``internal=false``); the author is the sender's Azure AD
object id (else their Teams id), never their name. The answer is a message activity that Teams shows in
the reply chain within its 5-second limit. Outgoing webhooks are told of no edits or deletions, so none
reach feedbackloop: an item is changed or removed in feedbackloop itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from html.parser import HTMLParser
from typing import Any

from core import hookimpl
from core.clock import parse_timestamp
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookAnswer, WebhookRejected, WebhookRequest
from plugins.slack import thread_key
from plugins.webhook_signing import UNSIGNED_OPTION, parse_json, split_option, truthy

AUTH_SCHEME = "HMAC "
DEFAULT_THANKS = "Thanks, your feedback was recorded."
OPTIONS = {
    **UNSIGNED_OPTION,
    "channels": "comma-separated Teams channel ids (channelData.channel.id) whose messages are taken "
                "(default: every channel of the team)",
    "thanks_text": f"the reply Teams shows under the message (default {DEFAULT_THANKS!r})",
    "internal": "false: the items do not come from the company's own people (default true for Teams)",
}
ACTIVITY_ID = re.compile(r"^[A-Za-z0-9:._@;=-]{1,128}$")
MESSAGE_ID = re.compile(r";messageid=(\d+)$")
BLOCK_TAGS = {"p", "br", "div", "li", "tr"}


def verify(request: WebhookRequest) -> None:
    """Refuse (401) a request whose ``Authorization: HMAC ...`` is missing or not made with the channel's token."""
    if not request.secret:
        if truthy(request.options.get("allow_unsigned", False)):
            return
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    given = request.headers.get("authorization", "")
    if not given.startswith(AUTH_SCHEME) or not given.isascii():
        raise WebhookRejected(401, "missing 'Authorization: HMAC <signature>' header")
    try:  # Teams' security token is base64: the HMAC key is its decoded bytes
        key = base64.b64decode(request.secret.strip(), validate=True)
    except (binascii.Error, ValueError) as error:  # the operator's mistake: 503 makes Teams' user retry later
        raise WebhookRejected(503, "the channel's secret is not a Teams security token (base64)") from error
    expected = base64.b64encode(hmac.new(key, request.body, hashlib.sha256).digest())
    # Constant-time: timing must not reveal how much of a forgery was right.
    if not hmac.compare_digest(given[len(AUTH_SCHEME):].strip().encode(), expected):
        raise WebhookRejected(401, "wrong Authorization HMAC: the body was not signed with this channel's token")


class _VisibleText(HTMLParser):
    """A Teams message's text without its markup: the leading mentions (the webhook's name, by which it was
    called) dropped, later ones (people's names) read as "@someone"."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.in_mention = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "at":
            if not self.in_mention and "".join(self.parts).strip():
                self.parts.append("@someone")
            self.in_mention += 1
        elif tag in BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "at" and self.in_mention:
            self.in_mention -= 1

    def handle_data(self, data: str) -> None:
        if not self.in_mention:
            self.parts.append(data)


def plain_text(text: str) -> str:
    """The words of a message, without the ``<at>`` mentions' names and the HTML Teams puts in ``text``."""
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    # The parser has already turned character references (&nbsp;, &amp;) into characters.
    lines = [" ".join(line.split()) for line in "".join(parser.parts).splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    verify(request)
    activity = parse_json(request.body)
    if not isinstance(activity, dict):
        raise WebhookRejected(400, "a Teams activity must be a JSON object")
    if activity.get("type") != "message":
        return IntakeResult(ignored=f"Teams activity type {activity.get('type')!r} is not a message")
    activity_id = activity.get("id")
    if not isinstance(activity_id, str) or not ACTIVITY_ID.match(activity_id):
        raise WebhookRejected(400, "the activity has no valid 'id'")
    channel_data = _object(activity.get("channelData"))
    teams_channel = _object(channel_data.get("channel")).get("id")
    wanted = split_option(request.options, "channels")
    if wanted and str(teams_channel or "").lower() not in wanted:
        return IntakeResult(ignored=f"Teams channel {teams_channel!r} is not one of this channel's")
    text = plain_text(str(activity.get("text") or ""))
    if not text:
        return IntakeResult(ignored="the message only mentions the webhook",
                            answer=_reply("Mention me with what you would like us to know."))
    sender = _object(activity.get("from"))
    author = sender.get("aadObjectId") or sender.get("id")
    if not isinstance(author, str) or not author:
        raise WebhookRejected(400, "the activity has no 'from' id")
    draft = ItemDraft(text=text, channel=request.channel_name, external_id=f"message-{activity_id}", author=author,
                      created_at=parse_timestamp(activity.get("timestamp")),
                      metadata=_metadata(request.options, activity, activity_id, channel_data))
    thanks = str(request.options.get("thanks_text") or DEFAULT_THANKS)
    return IntakeResult(items=[draft], delivery_id=f"activity:{activity_id}", answer=_reply(thanks))


def _metadata(options: Mapping[str, Any], activity: dict[str, Any], activity_id: str,
              channel_data: dict[str, Any]) -> dict[str, Any]:
    internal = truthy(options.get("internal", True))
    # conversation.id is the reply chain: the channel's id and ";messageid=<the chain's first message>".
    # Teams' ids ("19:...@thread.skype", 13-digit message ids) would not survive metadata redaction (an
    # e-mail address, a card number): keys made from them are stored instead.
    conversation = _object(activity.get("conversation")).get("id")
    conversation = conversation if isinstance(conversation, str) and conversation else None
    opener = MESSAGE_ID.search(conversation) if conversation else None
    channel_id = _object(channel_data.get("channel")).get("id")
    return {
        "internal": internal,
        "thread": f"teams-{thread_key(conversation)}" if conversation else None,
        "opens_thread": bool(opener and opener.group(1) == activity_id),
        "teams_channel_key": thread_key(channel_id) if isinstance(channel_id, str) and channel_id else None,
        "teams_tenant": _object(channel_data.get("tenant")).get("id"),
    }


def _reply(text: str) -> WebhookAnswer:
    """The message activity Teams posts in the reply chain."""
    return WebhookAnswer(body={"type": "message", "text": text})


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="teams", description="Microsoft Teams outgoing webhook (@mentions in a channel)",
                         handle_webhook=handle_webhook, options=OPTIONS))
