"""Built-in intake channel type ``slack``: a Slack app's Events API and its ``/feedback`` slash command.

Point the app's Event Subscriptions Request URL (bot events ``message.channels``, and ``message.groups``
for private channels) and its slash command's Request URL at ``/webhooks/NAME``; the channel's secret is
the app's Signing Secret. Every request is verified with ``slack_sdk``'s ``SignatureVerifier``
(``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:<timestamp>:<raw body>")>``,
``X-Slack-Request-Timestamp`` within 5 minutes of the server's clock, so a captured request cannot be
replayed later).

Events API (JSON): ``url_verification`` is answered with its challenge (text/plain); ``event_callback``
with a ``message`` event stores the message (``<channel>-<ts>``), ``message_changed`` edits it,
``message_deleted`` deletes it, and so does ``message_changed`` to a ``tombstone`` (a thread's parent
deleted while its replies stay). Bot messages, other subtypes (joins, topic changes...) and other events
are ignored. Slack retries an event it got no 2xx for within 3 seconds (``X-Slack-Retry-Num``); the
retry carries the same signed ``event_id``, which is the delivery id, so it is answered as a redelivery.

Slash command (form-encoded): ``/feedback <text>`` stores the text (``command-<trigger_id>``) and
answers with an ephemeral message only the sender sees. The author is the Slack user id, never the
(deprecated) ``user_name``; ``response_url`` is not kept. Items are marked ``internal`` unless the
channel sets ``internal=false`` (a Slack Connect channel shared with customers).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.signature import Clock, SignatureVerifier

from core import hookimpl
from core.types import ChannelType, IntakeResult, ItemDraft, WebhookAnswer, WebhookRejected, WebhookRequest
from plugins.webhook_signing import UNSIGNED_OPTION, parse_json, split_option, truthy

SIGNATURE_HEADER = "x-slack-signature"
TIMESTAMP_HEADER = "x-slack-request-timestamp"
# Slack's own tolerance, which slack_sdk applies: a request signed more than 5 minutes away is refused.
TOLERANCE_S = 300
DEFAULT_COMMANDS = "/feedback"
DEFAULT_THANKS = "Thanks, your feedback was recorded."
OPTIONS = {
    **UNSIGNED_OPTION,
    "channels": "comma-separated Slack channel ids whose messages are feedback (default: every channel the app is in)",
    "commands": "comma-separated slash commands taken as feedback (default /feedback)",
    "thanks_text": f"the ephemeral answer to a slash command (default {DEFAULT_THANKS!r})",
    "internal": "false: the items do not come from the company's own people, e.g. a Slack Connect channel "
                "(default true for Slack)",
}
# Plain messages, and messages by people that Slack gives a subtype (a file shared, a reply also sent
# to the channel); every other subtype is a notice (joins, topic changes) or a bot's.
PERSON_SUBTYPES = {None, "file_share", "thread_broadcast"}
TS = re.compile(r"^\d{1,12}\.\d{1,9}$")
SLACK_ID = re.compile(r"^[A-Za-z0-9]{1,64}$")
# Slack's mrkdwn references: <@U123>, <#C123|general>, <!here>, <https://example.org|label>.
REFERENCE = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")
MAX_CHALLENGE_CHARS = 512
DIGITS_AS_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def verify(request: WebhookRequest, now: float | None = None) -> None:
    """Refuse (401) a request whose Slack signature is missing, wrong or outside the 5-minute tolerance."""
    if not request.secret:
        if truthy(request.options.get("allow_unsigned", False)):
            return
        raise WebhookRejected(401, "this channel has no secret configured; refusing unsigned deliveries")
    signature, timestamp = request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise WebhookRejected(401, "missing X-Slack-Signature or X-Slack-Request-Timestamp header")
    # slack_sdk would raise on a timestamp that is no number and on a signature that is not ASCII.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) or not signature.isascii():
        raise WebhookRejected(401, "malformed X-Slack-Request-Timestamp or X-Slack-Signature header")
    drift = (time.time() if now is None else now) - int(timestamp)
    if abs(drift) > TOLERANCE_S:
        raise WebhookRejected(401, f"X-Slack-Request-Timestamp is {drift:.0f} s from this server's clock; Slack's "
                                   f"tolerance is {TOLERANCE_S} s (a replayed request, or a clock to set right)")
    try:
        request.body.decode("utf-8")  # slack_sdk signs the decoded text
    except UnicodeDecodeError as error:
        raise WebhookRejected(401, "the body is not UTF-8, so it cannot carry Slack's signature") from error
    verifier = SignatureVerifier(request.secret, clock=_FixedClock(now))
    if not verifier.is_valid(body=request.body, timestamp=timestamp, signature=signature):
        raise WebhookRejected(401, "wrong X-Slack-Signature: the request was not signed with this channel's secret")


class _FixedClock(Clock):
    """slack_sdk's clock: the time given (tests of published vectors), else the real one."""

    def __init__(self, moment: float | None) -> None:
        self.moment = moment

    def now(self) -> float:
        return time.time() if self.moment is None else self.moment


def handle_webhook(request: WebhookRequest) -> IntakeResult:
    verify(request)
    if request.body.lstrip()[:1] == b"{":
        return _event(request, parse_json(request.body))
    return _slash_command(request, _form(request.body))


def _form(body: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as error:
        raise WebhookRejected(400, f"body is neither a Slack event (JSON) nor a slash command (form): "
                                   f"{error}") from error
    return {key: values[0] for key, values in fields.items()}


def _event(request: WebhookRequest, payload: Any) -> IntakeResult:
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "a Slack event body must be a JSON object")
    kind = payload.get("type")
    if kind == "url_verification":
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or not 0 < len(challenge) <= MAX_CHALLENGE_CHARS:
            raise WebhookRejected(400, "url_verification without a 'challenge' string")
        return IntakeResult(ignored="Slack URL verification", answer=WebhookAnswer(body=challenge))
    if kind != "event_callback":
        return IntakeResult(ignored=f"Slack request type {kind!r} is not feedback")
    event, event_id = payload.get("event"), payload.get("event_id")
    if not isinstance(event, dict) or not isinstance(event_id, str) or not event_id:
        raise WebhookRejected(400, "an event_callback needs an 'event' object and an 'event_id'")
    if event.get("type") != "message":
        return IntakeResult(ignored=f"Slack event {event.get('type')!r} is not feedback")
    channel = _slack_id(event.get("channel"), "channel")
    wanted = split_option(request.options, "channels")
    if wanted and channel.lower() not in wanted:
        return IntakeResult(ignored=f"channel {channel} is not one of this channel's Slack channels")
    result = _message_event(request, event, channel, str(payload.get("team_id") or ""))
    # The event id is inside the signed body (unlike a header), and a retry repeats it: it is the delivery id.
    result.delivery_id = f"event:{event_id}"
    return result


def _message_event(request: WebhookRequest, event: dict[str, Any], channel: str, team: str) -> IntakeResult:
    subtype = event.get("subtype")
    if subtype == "message_deleted":
        return IntakeResult(deleted_ids=[f"{channel}-{_ts(event.get('deleted_ts'))}"])
    if subtype == "message_changed":
        message = event.get("message")
        if not isinstance(message, dict):
            raise WebhookRejected(400, "message_changed without a 'message' object")
        if message.get("subtype") == "tombstone":  # a thread's parent deleted while its replies stay
            return IntakeResult(deleted_ids=[f"{channel}-{_ts(message.get('ts'))}"])
        edited = message.get("edited")
        edited_ts = edited.get("ts") if isinstance(edited, dict) else None
        return _message(request, message, channel, team, edited_ts or event.get("ts"))
    if subtype not in PERSON_SUBTYPES:
        return IntakeResult(ignored=f"Slack message subtype {subtype!r} is not feedback")
    return _message(request, event, channel, team, None)


def _message(request: WebhookRequest, message: dict[str, Any], channel: str, team: str,
             edited_ts: Any) -> IntakeResult:
    if message.get("bot_id") or message.get("subtype") == "bot_message":
        return IntakeResult(ignored="message by a bot")
    ts = _ts(message.get("ts"))
    user = message.get("user")
    if not isinstance(user, str) or not SLACK_ID.match(user):
        return IntakeResult(ignored=f"message {ts} has no user")
    text = plain_text(str(message.get("text") or ""))
    if not text:
        return IntakeResult(ignored=f"message {ts} carries no text")
    thread_ts = message.get("thread_ts")
    thread_ts = _ts(thread_ts) if thread_ts is not None else ts
    updated = _moment(edited_ts) if edited_ts is not None else _moment(ts)
    draft = ItemDraft(text=text, channel=request.channel_name, external_id=f"{channel}-{ts}", author=user,
                      created_at=_moment(ts), updated_at=updated,
                      metadata={**_people(request.options), "thread": f"{channel}-{thread_key(channel, thread_ts)}",
                                "opens_thread": thread_ts == ts, "slack_channel": channel, "slack_team": team or None})
    return IntakeResult(items=[draft])


def _slash_command(request: WebhookRequest, form: dict[str, str]) -> IntakeResult:
    if "payload" in form:  # interactivity (buttons, shortcuts) shares the app's signing secret
        return IntakeResult(ignored="Slack interactivity payloads are not feedback")
    command = form.get("command", "")
    if not command:
        raise WebhookRejected(400, "body is neither a Slack event (JSON) nor a slash command (no 'command')")
    commands = split_option({"commands": request.options.get("commands") or DEFAULT_COMMANDS}, "commands")
    if command.lower() not in commands:
        return IntakeResult(ignored=f"slash command {command!r} is not a feedback command",
                            answer=_ephemeral(f"{command} is not set up to take feedback here."))
    user, channel = form.get("user_id", ""), form.get("channel_id", "")
    if not SLACK_ID.match(user) or not SLACK_ID.match(channel):
        raise WebhookRejected(400, "a slash command needs 'user_id' and 'channel_id'")
    text = plain_text(form.get("text", ""))
    if not text:
        return IntakeResult(ignored="slash command without text",
                            answer=_ephemeral(f"Usage: {command} what you would like us to know"))
    trigger = form.get("trigger_id", "")
    draft = ItemDraft(text=text, channel=request.channel_name, external_id=f"command-{trigger}" if trigger else None,
                      author=user, metadata={**_people(request.options), "opens_thread": False,
                                             "slack_channel": channel, "slack_team": form.get("team_id") or None,
                                             "slack_command": command})
    thanks = str(request.options.get("thanks_text") or DEFAULT_THANKS)
    # Slack sends a slash command once; the trigger id (signed, one per invocation) still marks a replay.
    return IntakeResult(items=[draft], delivery_id=f"command:{trigger}" if trigger else None,
                        answer=_ephemeral(thanks))


def thread_key(*ids: str) -> str:
    """A stable key for a thread that metadata redaction leaves as it is: it takes the long digit runs of
    thread ids for phone or card numbers (a Slack ts ``1355517523.000005`` became ``[PHONE].000005``)."""
    return hashlib.sha256("\n".join(ids).encode()).hexdigest().translate(DIGITS_AS_LETTERS)[:24]


def _ephemeral(text: str) -> WebhookAnswer:
    """A slash command's answer that only the person who typed it sees."""
    return WebhookAnswer(body={"response_type": "ephemeral", "text": text})


def _people(options: Mapping[str, Any]) -> dict[str, bool]:
    """Slack is the company's own workspace: its people's feedback is internal, unless the channel says
    otherwise. Not "staff": that marks someone answering customers in a community, which Slack cannot tell."""
    return {"internal": truthy(options.get("internal", True))}


def plain_text(text: str) -> str:
    """Slack's mrkdwn as plain text: people's ids out, channel names and link labels in."""
    def reference(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):  # a person's id says nothing about the feedback and points at someone
            return "@someone"
        if target.startswith("#"):
            return f"#{label}" if label else "#channel"
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return label or target

    lines = [" ".join(line.split()) for line in unescape(REFERENCE.sub(reference, text)).splitlines()]
    return "\n".join(line for line in lines if line).strip()


def _slack_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SLACK_ID.match(value):
        raise WebhookRejected(400, f"the event has no valid {what!r} id")
    return value


def _ts(value: Any) -> str:
    if not isinstance(value, str) or not TS.match(value):
        raise WebhookRejected(400, f"{value!r} is not a Slack message timestamp ('1355517523.000005')")
    return value


def _moment(ts: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@hookimpl
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    register(ChannelType(name="slack", description="Slack Events API messages and a /feedback slash command",
                         handle_webhook=handle_webhook, options=OPTIONS))
