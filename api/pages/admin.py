"""The admin pages' index (``/admin``), the channels (``/admin/channels``) and the audit log (``/admin/audit``).

Admins only (``AdminUser``: anyone else gets 403). Channels are added and removed with the same core
functions as ``/api/v1/channels`` (core/intake/channels.py), so a name, plugin, secret variable or option
is refused for the same reason in both places. What the page says about a channel's traffic comes from
what intake stores: its items, the delivery ids of webhook deliveries (``webhook_deliveries``) and the
closing-the-loop replies sent through it. A webhook delivery that is refused (bad signature, not JSON,
over a limit) is answered and logged, not stored, so there is no count of those to show.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.deps import IntakeDep, LoopDep, SessionDep, commit_or_503
from api.inputs import bounded_object
from api.pages.admin_common import (
    Confirmation,
    done,
    flash,
    forget_change,
    form_raw,
    refused_status,
    render_confirm,
)
from api.pages.common import AdminUser, CheckedForm, CurrentUser, form_text, render
from core.auth.api_keys import list_api_keys
from core.auth.users import list_users
from core.errors import FeedbackloopError, InvalidInput
from core.intake.channels import add_channel, list_channels, remove_channel
from core.loop import FeedbackLoop
from core.models import AuditEntry, Channel, FeedbackItem, LoopReply, WebhookDelivery

router = APIRouter(include_in_schema=False)
ChannelName = Annotated[str, Path(min_length=1, max_length=128)]
MAX_OPTIONS_CHARS = 20_000
MAX_SUMMARY_CHARS = 60
# Option names whose values are credentials in themselves; options normally name a variable (``*_env``).
SECRET_NAME = re.compile(r"secret|token|password|passwd|api_?key|credential", re.IGNORECASE)
AUDIT_PAGE_SIZE = 50
MAX_FILTER_CHARS = 128
ADMIN_PAGES = (("/admin/channels", "Channels", "Where feedback comes from: add or remove a channel."),
               ("/admin/rules", "Routing rules", "Who gets which theme; edit, then preview the routing."),
               ("/admin/users", "Users", "Accounts, roles and teams; deactivate, sign out everywhere."),
               ("/admin/keys", "API keys", "Keys for the API: create (shown once), revoke."),
               ("/admin/reply-template", "Reply template",
                "What people are told when their theme is done or declined."),
               ("/admin/audit", "Audit log", "Every change, who made it and when."))


@router.get("/admin", response_class=HTMLResponse)
def admin_index(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep) -> HTMLResponse:
    users = list_users(session)
    counts = {"/admin/channels": f"{len(list_channels(session))} channels",
              "/admin/users": f"{sum(user.active for user in users)} active users of {len(users)}",
              "/admin/keys": f"{sum(not key.revoked for key in list_api_keys(session))} active keys",
              "/admin/rules": str(loop.settings.rules_file) if loop.settings.rules_file else "no rules file set"}
    return render(request, "admin_index.html", current, {"pages": ADMIN_PAGES, "counts": counts},
                  session=session)


# Channels ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelRow:
    channel: Channel
    installed: bool
    options: list[tuple[str, str]]
    webhook_url: str
    items: int
    last_item_at: datetime | None
    last_delivery_at: datetime | None
    deliveries: int
    failed_replies: int


def summarize_value(name: str, value: Any) -> str:
    """An option's value as the list shows it: credentials hidden, URLs cut to their host (a chat webhook's
    path is its secret), long values shortened."""
    if SECRET_NAME.search(name) and not name.endswith("_env"):
        return "(hidden)"
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if parts.path in ("", "/") and not parts.query:
            return value[:MAX_SUMMARY_CHARS]
        return f"{parts.scheme}://{parts.hostname or ''}/…"
    if isinstance(value, dict):
        return f"{len(value)} settings"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    text = str(value)
    return text if len(text) <= MAX_SUMMARY_CHARS else text[:MAX_SUMMARY_CHARS - 1] + "…"


def channel_rows(loop: FeedbackLoop, session: Session) -> list[ChannelRow]:
    items = {name: count for name, count in session.execute(
        select(FeedbackItem.channel, func.count()).group_by(FeedbackItem.channel))}
    last_item = {name: newest for name, newest in session.execute(
        select(FeedbackItem.channel, func.max(FeedbackItem.received_at)).group_by(FeedbackItem.channel))}
    deliveries = {name: (count, newest) for name, count, newest in session.execute(
        select(WebhookDelivery.channel, func.count(), func.max(WebhookDelivery.received_at))
        .group_by(WebhookDelivery.channel))}
    failed = {name: count for name, count in session.execute(
        select(LoopReply.channel, func.count()).where(LoopReply.state == "failed").group_by(LoopReply.channel))}
    base = loop.settings.public_url.rstrip("/")
    return [ChannelRow(channel=channel, installed=channel.plugin in loop.channel_types,
                       options=[(key, summarize_value(key, value))
                                for key, value in sorted((channel.options or {}).items())],
                       webhook_url=f"{base}/webhooks/{channel.name}", items=int(items.get(channel.name, 0)),
                       last_item_at=last_item.get(channel.name),
                       last_delivery_at=deliveries.get(channel.name, (0, None))[1],
                       deliveries=int(deliveries.get(channel.name, (0, None))[0]),
                       failed_replies=int(failed.get(channel.name, 0)))
            for channel in list_channels(session)]


def parse_options(text: str) -> dict[str, Any]:
    """Channel options written as a JSON object or as TOML (``key = "value"`` lines); empty is none."""
    if len(text) > MAX_OPTIONS_CHARS:
        raise InvalidInput(f"options are at most {MAX_OPTIONS_CHARS} characters")
    if not text.strip():
        return {}
    try:
        value: Any = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"options are not valid JSON: {error}") from error
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput(f"options are not valid TOML: {error} (or write a JSON object)") from error
    if not isinstance(value, dict):
        raise InvalidInput("options must be a JSON object or TOML key = value lines")
    try:
        return bounded_object(value)
    except ValueError as error:
        raise InvalidInput(f"options {error}") from error


def channels_page(request: Request, current: CurrentUser, session: Session, loop: FeedbackLoop,
                  error: str | None = None, form: FormData | None = None, status_code: int = 200) -> HTMLResponse:
    values = {name: form_text(form, name) for name in ("name", "plugin", "secret_env")} if form else {}
    values["options"] = form_raw(form, "options") if form else ""
    plugins = sorted(loop.channel_types.values(), key=lambda kind: kind.name)
    return render(request, "admin_channels.html", current, {
        "rows": channel_rows(loop, session), "plugins": plugins, "done": flash(request), "error": error,
        "values": values}, status_code=status_code, session=session)


@router.get("/admin/channels", response_class=HTMLResponse)
def admin_channels(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep) -> HTMLResponse:
    return channels_page(request, current, session, loop)


@router.post("/admin/channels", response_class=HTMLResponse)
def admin_add_channel(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                      intake: IntakeDep, form: CheckedForm) -> Response:
    name = form_text(form, "name")
    try:
        options = parse_options(form_raw(form, "options"))
        channel = add_channel(loop, session, name, form_text(form, "plugin"), form_text(form, "secret_env") or None,
                              options, actor=current.actor)
    except FeedbackloopError as error:
        forget_change(session)
        return channels_page(request, current, session, loop, error.message, form, refused_status(error))
    intake.forget_channels()
    url = f"{loop.settings.public_url.rstrip('/')}/webhooks/{channel.name}"
    return done("/admin/channels", f"Channel {channel.name} added; its deliveries go to {url}.")


@router.get("/admin/channels/{name}/remove", response_class=HTMLResponse)
def admin_remove_channel_confirm(name: ChannelName, request: Request, current: AdminUser,
                                 session: SessionDep, loop: LoopDep) -> HTMLResponse:
    row = next((row for row in channel_rows(loop, session) if row.channel.name == name), None)
    if row is None:
        return channels_page(request, current, session, loop, f"no channel named {name!r}", status_code=404)
    lines = [f"Channel {name} ({row.channel.plugin}) is removed: deliveries to {row.webhook_url} are refused "
             "from then on (404).",
             f"Its {row.items} stored items stay, in their themes; nothing is erased.",
             "Closing-the-loop replies to its threads stop (the channel is not configured any more)."]
    if row.deliveries:
        lines.append(f"It received {row.deliveries} webhook deliveries, so API keys and file imports still "
                     f"cannot write items under the name {name}.")
    return render_confirm(request, current, session, Confirmation(
        title=f"Remove channel {name}?", lines=lines, post_to=f"/admin/channels/{name}/remove",
        back="/admin/channels", button="Remove channel", danger=True))


@router.post("/admin/channels/{name}/remove")
def admin_remove_channel(name: ChannelName, request: Request, current: AdminUser, session: SessionDep,
                         loop: LoopDep, intake: IntakeDep, _form: CheckedForm) -> Response:
    try:
        remove_channel(session, name, actor=current.actor)
    except FeedbackloopError as error:
        forget_change(session)
        return channels_page(request, current, session, loop, error.message, status_code=refused_status(error))
    commit_or_503(session)  # committed before the cache is dropped, so the next delivery sees the removal
    intake.forget_channels()
    return done("/admin/channels", f"Channel {name} removed; its items stay.")


# Audit log --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    actor: str
    action: str
    entity_type: str
    since: str
    until: str

    def query(self, page: int | None = None) -> str:
        pairs = [(key, value) for key, value in vars(self).items() if value]
        return urlencode(pairs + ([("page", str(page))] if page else []))


def _day(text: str, label: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{label} must be a date written YYYY-MM-DD, not {text[:20]!r}") from None


def audit_rows(session: Session, filters: AuditFilters, page: int) -> tuple[list[AuditEntry], int]:
    """One page of entries, newest first, and how many match in all."""
    since, until = _day(filters.since, "From"), _day(filters.until, "To")
    if since and until and since > until:
        raise InvalidInput("the From date is after the To date")
    conditions = []
    if filters.actor:
        conditions.append(AuditEntry.actor.contains(filters.actor, autoescape=True))
    if filters.action:
        conditions.append(AuditEntry.action == filters.action)
    if filters.entity_type:
        conditions.append(AuditEntry.entity_type == filters.entity_type)
    if since:
        conditions.append(AuditEntry.at >= datetime.combine(since, time.min, tzinfo=UTC))
    if until:  # the To day is included: everything before the next midnight
        conditions.append(AuditEntry.at < datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC))
    total = int(session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0)
    rows = list(session.scalars(select(AuditEntry).where(*conditions).order_by(AuditEntry.at.desc(),
                                                                               AuditEntry.id.desc())
                                .offset((page - 1) * AUDIT_PAGE_SIZE).limit(AUDIT_PAGE_SIZE)))
    return rows, total


FilterText = Annotated[str, Query(max_length=MAX_FILTER_CHARS)]


@router.get("/admin/audit", response_class=HTMLResponse)
def admin_audit(request: Request, current: AdminUser, session: SessionDep, actor: FilterText = "",
                action: FilterText = "", entity_type: FilterText = "", since: FilterText = "",
                until: FilterText = "", page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> HTMLResponse:
    filters = AuditFilters(actor.strip(), action.strip(), entity_type.strip(), since.strip(), until.strip())
    error, status_code, total = None, 200, 0
    rows: list[AuditEntry] = []
    try:
        rows, total = audit_rows(session, filters, page)
    except InvalidInput as refused:
        error, status_code = refused.message, refused.status_code
    actions = list(session.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))
    entity_types = list(session.scalars(select(AuditEntry.entity_type).distinct().order_by(AuditEntry.entity_type)))
    pages = max(1, -(-total // AUDIT_PAGE_SIZE))
    return render(request, "admin_audit.html", current, {
        "rows": [(entry, json.dumps(entry.details, ensure_ascii=False, sort_keys=True, default=str)[:400])
                 for entry in rows],
        "filters": filters, "actions": actions, "entity_types": entity_types, "page": page, "pages": pages,
        "total": total, "error": error}, status_code=status_code, session=session)
