"""Ownership rules over HTTP: read, validate and replace the rules file; the routing dry run; the
closing-the-loop reply template. Rules need an admin key (they hold target options such as webhook
URLs); the template a pm key; see the permission matrix in core/auth/api_keys.py."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import AdminKey, LoopDep, PmKey, ReadKey, SessionDep
from api.errors import API_ERRORS, error_responses
from core.routing.plan import decide
from core.routing.replies import reply_template, set_reply_template
from core.routing.rules import RuleSet, configured_rules_path, load_rules, parse_rules, replace_rules

router = APIRouter(prefix="/api/v1", tags=["routing"], responses=error_responses(*API_ERRORS))


class RulesSource(BaseModel):
    source: str = Field(max_length=200_000, description="The whole rules file, TOML (see core/routing/rules.py).")


class TemplateBody(BaseModel):
    template: str = Field(min_length=1, max_length=5_000, description="Text with $theme, $status and $link.")


def _summary(rules: RuleSet) -> dict[str, Any]:
    return {"rules": [asdict(rule) for rule in rules.rules], "spikes": [asdict(spike) for spike in rules.spikes],
            "default": asdict(rules.default) if rules.default else None}


@router.get("/rules", operation_id="get_rules", responses=error_responses(409))
def get_rules(loop: LoopDep, _admin: AdminKey) -> dict[str, Any]:
    """The rules file: its text and the parsed rules in the order they are tried."""
    path = configured_rules_path(loop.settings.rules_file)
    rules = load_rules(path, loop.settings)
    return {"file": str(path), "source": path.read_text(encoding="utf-8"), **_summary(rules)}


@router.post("/rules/validate", operation_id="validate_rules")
def validate_rules(body: RulesSource, loop: LoopDep, _admin: AdminKey) -> dict[str, Any]:
    """Check a rules file without saving it; 422 names the line and the reason."""
    return {"valid": True, **_summary(parse_rules(body.source, origin="rules", settings=loop.settings))}


@router.put("/rules", operation_id="replace_rules", responses=error_responses(409, 503))
def put_rules(body: RulesSource, loop: LoopDep, session: SessionDep, admin: AdminKey) -> dict[str, Any]:
    """Replace the rules file; an invalid one is refused (422) and the old file stays as it was."""
    path = configured_rules_path(loop.settings.rules_file)
    rules = replace_rules(session, path, body.source, actor=admin.actor, settings=loop.settings)
    return {"file": str(path), **_summary(rules)}


@router.get("/routing/dry-run", operation_id="routing_dry_run")
def routing_dry_run(loop: LoopDep, session: SessionDep, _caller: PmKey) -> list[dict[str, Any]]:
    """For every active theme: who would get it and which rule decided, or a suggested owner."""
    decisions = decide(loop, session, suggest=True)
    return [{"theme_id": d.theme.id, "label": d.theme.label, "volume": d.theme.volume,
             "owner": d.choice.owner if d.choice else None, "target": d.choice.target_type if d.choice else None,
             "rule": d.choice.rule if d.choice else None,
             "suggestion": asdict(d.suggestion) if d.suggestion else None} for d in decisions]


@router.get("/loop/reply-template", operation_id="get_reply_template")
def get_reply_template(session: SessionDep, _caller: ReadKey) -> dict[str, str]:
    return {"template": reply_template(session)}


@router.put("/loop/reply-template", operation_id="set_reply_template", responses=error_responses(503))
def put_reply_template(body: TemplateBody, session: SessionDep, caller: PmKey) -> dict[str, str]:
    """The message sent to people when their theme is done or declined."""
    set_reply_template(session, body.template, actor=caller.actor)
    return {"template": body.template}
