"""The routing rules (``/admin/rules``) and the closing-the-loop reply template (``/admin/reply-template``).

Both are edited, previewed, then saved, as ``/api/v1/rules`` and ``/api/v1/loop/reply-template`` save
them (core/routing/rules.py ``replace_rules``, core/routing/replies.py ``set_reply_template``): the rules
file is what routing reads (the ``routing_rules`` table is not consulted by anything), so that is what
this page edits. The preview of edited rules is the routing dry run (core/routing/plan.py) with the edited
rules in place of the file's: every other owner-choosing plugin is asked first, as routing does, and the
rules decide only where they all pass. Saving names the preview it follows (a digest of the text) and the
file it replaces, so rules edited after their preview, or a file someone else saved meanwhile, are shown
again rather than saved unseen.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api.deps import LoopDep, SessionDep
from api.pages.admin_common import digest, done, flash, forget_change, form_raw, normal_newlines, refused_status
from api.pages.common import AdminUser, CheckedForm, CurrentUser, form_text, render
from core.errors import FeedbackloopError, InvalidInput
from core.loop import FeedbackLoop
from core.models import Theme
from core.routing import replies
from core.routing.messages import theme_link
from core.routing.plan import decide, routable_views
from core.routing.replies import STATUS_WORDS, TemplateError, channel_replies, reply_template, set_reply_template
from core.routing.rules import Rule, RuleSet, SpikeRule, load_rules, parse_rules, replace_rules
from core.routing.suggest import Suggestion, suggest_owners
from core.types import OwnerChoice, ThemeView

router = APIRouter(include_in_schema=False)
RULES_PLUGIN = "plugins.rules_owner"  # the built-in that reads the rules file (core/plugin_manager.py)
MAX_RULES_CHARS = 200_000  # as the API's RulesSource
MAX_TEMPLATE_CHARS = 5_000  # as the API's TemplateBody
THEMES_OFFERED = 100
NO_FILE = "none"
EXAMPLE_THEME = "Example theme"  # the preview's theme while there is none yet


# Rules ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewRow:
    theme: ThemeView
    now: OwnerChoice | None
    after: OwnerChoice | None
    suggestion: Suggestion | None

    @property
    def changed(self) -> bool:
        return _who(self.now) != _who(self.after)


def _who(choice: OwnerChoice | None) -> tuple[str, str] | None:
    return (choice.owner, choice.target_type) if choice is not None else None


def routing_preview(loop: FeedbackLoop, session: Session, rules: RuleSet) -> tuple[list[PreviewRow], str | None]:
    """Every active theme with who gets it now and who would under ``rules``; changes nothing. The second
    value says why "now" is unknown (the rules file in force is missing or broken), else None."""
    try:
        now = {decision.theme.id: decision.choice for decision in decide(loop, session)}
        now_error = None
    except FeedbackloopError as error:
        now, now_error = {}, error.message
    rules_plugin = loop.pm.get_plugin(RULES_PLUGIN)
    others = loop.pm.subset_hook_caller("choose_owner", remove_plugins=[rules_plugin] if rules_plugin else [])
    views = routable_views(loop, session)
    after: dict[int, OwnerChoice | None] = {
        view.id: others(theme=view, settings=loop.settings) or rules.decide(view) for view in views}
    unmatched = [theme_id for theme_id, choice in after.items() if choice is None]
    suggestions = suggest_owners(session, unmatched) if unmatched else {}
    return [PreviewRow(view, now.get(view.id), after[view.id], suggestions.get(view.id)) for view in views], now_error


def describe_rule(rule: Rule | SpikeRule) -> str:
    """A rule's conditions in a line (target options are named, not shown: they can hold webhook URLs)."""
    parts = [f"{key} = {value}" for key, value in sorted(rule.conditions.items())] or ["always"]
    if rule.target_options:
        parts.append(f"target options: {', '.join(sorted(rule.target_options))}")
    return "; ".join(parts)


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return NO_FILE


def rules_page(request: Request, current: CurrentUser, session: Session, loop: FeedbackLoop,
               source: str | None = None, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    path = loop.settings.rules_file
    values: dict[str, Any] = {"rules_path": path, "done": flash(request), "error": error, "rules": None,
                              "current_error": None, "exists": False, "source": source or ""}
    if path is not None:
        values["exists"] = Path(path).is_file()
        if values["exists"]:
            try:
                values["rules"] = load_rules(path, loop.settings)
            except FeedbackloopError as broken:
                values["current_error"] = broken.message
            if source is None:
                try:
                    values["source"] = Path(path).read_text(encoding="utf-8", errors="replace")
                except OSError as unreadable:
                    values["current_error"] = f"{path}: cannot read the rules file: {unreadable.strerror}"
    return render(request, "admin_rules.html", current, {**values, "describe": describe_rule},
                  status_code=status_code, session=session)


def preview_page(request: Request, current: CurrentUser, session: Session, loop: FeedbackLoop, source: str,
                 rules: RuleSet, notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    assert loop.settings.rules_file is not None
    rows, now_error = routing_preview(loop, session, rules)
    entries: list[Rule | SpikeRule] = [*rules.rules, *([rules.default] if rules.default else []), *rules.spikes]
    unknown = sorted({entry.target for entry in entries} - set(loop.target_types))
    return render(request, "admin_rules_preview.html", current, {
        "rules": rules, "rows": rows, "now_error": now_error, "source": source, "previewed": digest(source),
        "file_sha": file_digest(Path(loop.settings.rules_file)), "notice": notice, "describe": describe_rule,
        "changed": sum(row.changed for row in rows), "unknown_targets": unknown,
        "targets": sorted(loop.target_types)}, status_code=status_code, session=session)


def _posted_rules(loop: FeedbackLoop, form: FormData) -> tuple[str, RuleSet]:
    source = normal_newlines(form_raw(form, "source"))
    if len(source) > MAX_RULES_CHARS:
        raise InvalidInput(f"the rules are at most {MAX_RULES_CHARS} characters")
    return source, parse_rules(source, origin="rules", settings=loop.settings)


@router.get("/admin/rules", response_class=HTMLResponse)
def admin_rules(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep) -> HTMLResponse:
    return rules_page(request, current, session, loop)


@router.post("/admin/rules/preview", response_class=HTMLResponse)
def admin_rules_preview(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                        form: CheckedForm) -> HTMLResponse:
    if loop.settings.rules_file is None:
        return rules_page(request, current, session, loop, error="no rules file configured; set "
                          "FEEDBACKLOOP_RULES_FILE", status_code=409)
    try:
        source, rules = _posted_rules(loop, form)
    except FeedbackloopError as error:
        return rules_page(request, current, session, loop, normal_newlines(form_raw(form, "source"))[
            :MAX_RULES_CHARS], error.message, refused_status(error))
    return preview_page(request, current, session, loop, source, rules)


@router.post("/admin/rules", response_class=HTMLResponse)
def admin_rules_save(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                     form: CheckedForm) -> Response:
    path = loop.settings.rules_file
    if path is None:
        return rules_page(request, current, session, loop, error="no rules file configured; set "
                          "FEEDBACKLOOP_RULES_FILE", status_code=409)
    try:
        source, rules = _posted_rules(loop, form)
    except FeedbackloopError as error:
        return rules_page(request, current, session, loop, normal_newlines(form_raw(form, "source"))[
            :MAX_RULES_CHARS], error.message, refused_status(error))
    if digest(source) != form_text(form, "previewed"):
        return preview_page(request, current, session, loop, source, rules,
                            "The rules changed after their preview: this is the preview of the rules as they are "
                            "now. Nothing is saved yet.")
    if file_digest(Path(path)) != form_text(form, "file_sha"):
        return preview_page(request, current, session, loop, source, rules,
                            "The rules file changed since this preview (someone else saved it): check the preview "
                            "again against the rules in force now. Nothing is saved yet.", status_code=409)
    try:
        saved = replace_rules(session, Path(path), source, actor=current.actor, settings=loop.settings)
    except FeedbackloopError as error:
        forget_change(session)
        return rules_page(request, current, session, loop, source, error.message, refused_status(error))
    except OSError as error:  # the file's folder is missing or not writable: the operator's to fix
        forget_change(session)
        return rules_page(request, current, session, loop, source, f"{path}: cannot write the rules file: "
                          f"{error.strerror}", 409)
    return done("/admin/rules", f"Rules saved: {len(saved.rules)} rules, {len(saved.spikes)} spike rules"
                f"{', and a default' if saved.default else ''}.")


# Reply template ---------------------------------------------------------------------------------------


def check_template(text: str) -> str:
    """The checks ``set_reply_template`` makes, made before a preview (saving makes them again), and the
    form's own size limit."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"the template is at most {MAX_TEMPLATE_CHARS} characters")
    return replies.check_template(text)


def _themes(session: Session) -> list[Theme]:
    return list(session.scalars(select(Theme).where(Theme.merged_into_id.is_(None))
                                .order_by(Theme.updated_at.desc(), Theme.id.desc()).limit(THEMES_OFFERED)))


def template_page(request: Request, current: CurrentUser, session: Session, loop: FeedbackLoop,
                  text: str | None = None, theme_id: int | None = None, status: str = "done",
                  error: str | None = None, notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    """The editor; with ``text`` checked and a theme, also the preview and the save button."""
    themes = _themes(session)
    theme = next((t for t in themes if t.id == theme_id), None) or (session.get(Theme, theme_id) if theme_id else None)
    theme = theme or (themes[0] if themes else None)
    rendered = None
    if text is not None and error is None:  # as core/routing/replies.py fills it in when a reply is sent
        label, link = (theme.label, theme_link(loop.settings.public_url, theme.id)) if theme is not None \
            else (EXAMPLE_THEME, theme_link(loop.settings.public_url, 1))
        rendered = Template(text).safe_substitute(theme=label, status=STATUS_WORDS.get(status, status), link=link)
    replying = sorted(name for name, replies in channel_replies(loop, session).items() if replies is not None)
    return render(request, "admin_reply_template.html", current, {
        "template": text if text is not None else reply_template(session), "saved": reply_template(session),
        "themes": themes, "theme": theme, "status": status, "statuses": list(STATUS_WORDS), "rendered": rendered,
        "previewed": digest(text) if rendered is not None and text is not None else None, "replying": replying,
        "done": flash(request), "error": error, "notice": notice}, status_code=status_code, session=session)


def _posted_template(form: FormData) -> tuple[str, int | None, str]:
    text = normal_newlines(form_raw(form, "template"))
    theme = form_text(form, "theme")
    status = form_text(form, "status") or "done"
    if status not in STATUS_WORDS:
        raise InvalidInput(f"status must be one of {', '.join(STATUS_WORDS)}")
    if theme and (not theme.isdigit() or len(theme) > 12):
        raise InvalidInput("theme must be a theme id")
    return text, int(theme) if theme else None, status


def _checked_template(request: Request, current: CurrentUser, session: Session, loop: FeedbackLoop,
                      form: FormData) -> tuple[str, int | None, str] | HTMLResponse:
    """The posted template, theme and status once checked; else the editor again with the reason."""
    try:
        text, theme_id, status = _posted_template(form)
        check_template(text)
    except FeedbackloopError as error:
        return template_page(request, current, session, loop, normal_newlines(form_raw(form, "template"))[
            :MAX_TEMPLATE_CHARS], error=error.message, status_code=refused_status(error))
    return text, theme_id, status


@router.get("/admin/reply-template", response_class=HTMLResponse)
def admin_reply_template(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep) -> HTMLResponse:
    return template_page(request, current, session, loop)


@router.post("/admin/reply-template/preview", response_class=HTMLResponse)
def admin_reply_template_preview(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                                 form: CheckedForm) -> HTMLResponse:
    posted = _checked_template(request, current, session, loop, form)
    if isinstance(posted, HTMLResponse):
        return posted
    return template_page(request, current, session, loop, *posted)


@router.post("/admin/reply-template", response_class=HTMLResponse)
def admin_reply_template_save(request: Request, current: AdminUser, session: SessionDep, loop: LoopDep,
                              form: CheckedForm) -> Response:
    posted = _checked_template(request, current, session, loop, form)
    if isinstance(posted, HTMLResponse):
        return posted
    text, theme_id, status = posted
    if digest(text) != form_text(form, "previewed"):
        return template_page(request, current, session, loop, text, theme_id, status,
                             notice="The template changed after its preview: this is the preview of the template "
                                    "as it is now. Nothing is saved yet.")
    try:
        set_reply_template(session, text, actor=current.actor)
    except FeedbackloopError as error:
        forget_change(session)
        return template_page(request, current, session, loop, text, theme_id, status, error=error.message,
                             status_code=refused_status(error))
    return done("/admin/reply-template", "Reply template saved.")
