"""Ownership rules from a TOML file: conditions on a theme lead to an owner and a target.

    [default]
    owner = "product"            # used when no rule matches

    [[rule]]
    name = "cards"
    priority = 10                # lower runs first; ties keep file order
    owner = "cards"
    target = "inbox"             # a routing target type
    keywords_any = ["card", "pin"]
    kind = ["complaint"]         # optional conditions, all must hold
    min_volume = 5
    max_sentiment = -0.2

Errors name the file, the line of the offending rule, and the reason.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.types import OwnerChoice, ThemeView

CONDITION_KEYS = {"keywords_any", "label_contains", "kind", "channel", "min_volume", "max_sentiment",
                  "min_sentiment", "status"}
RULE_KEYS = CONDITION_KEYS | {"name", "priority", "owner", "target", "target_options"}


class RulesError(ValueError):
    """An invalid rules file; the message says where and why."""


@dataclass(frozen=True)
class Rule:
    name: str
    owner: str
    priority: int = 100
    target: str = "inbox"
    target_options: dict[str, Any] = field(default_factory=dict)
    conditions: dict[str, Any] = field(default_factory=dict)

    def matches(self, theme: ThemeView) -> bool:
        return all(_condition_holds(key, value, theme) for key, value in self.conditions.items())


def _words(theme: ThemeView) -> set[str]:
    text = " ".join([theme.label, *theme.keywords]).lower()
    return set(re.findall(r"[a-z0-9]+", text)) | {k.lower() for k in theme.keywords}


def _condition_holds(key: str, value: Any, theme: ThemeView) -> bool:
    if key == "keywords_any":
        words = _words(theme)
        return any(str(v).lower() in words for v in value)
    if key == "label_contains":
        return str(value).lower() in theme.label.lower()
    if key == "kind":
        return theme.dominant_kind in value
    if key == "channel":
        return any(channel in value for channel in theme.channels)
    if key == "status":
        return theme.status in value
    if key == "min_volume":
        return bool(theme.volume >= value)
    if key == "max_sentiment":
        return bool(theme.mean_sentiment <= value)
    if key == "min_sentiment":
        return bool(theme.mean_sentiment >= value)
    raise RulesError(f"unknown condition {key!r}")


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    default: Rule | None

    def decide(self, theme: ThemeView) -> OwnerChoice | None:
        for rule in self.rules:
            if rule.matches(theme):
                return OwnerChoice(rule.owner, rule.target, rule.target_options, rule.name)
        if self.default is not None:
            d = self.default
            return OwnerChoice(d.owner, d.target, d.target_options, "default")
        return None


def _rule_lines(source: str) -> list[int]:
    return [number for number, line in enumerate(source.splitlines(), 1) if line.strip() == "[[rule]]"]


def parse_rules(source: str, origin: str = "rules") -> RuleSet:
    try:
        document = tomllib.loads(source)
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{origin}: not valid TOML: {error}") from error
    unknown_top = set(document) - {"rule", "default"}
    if unknown_top:
        raise RulesError(f"{origin}: unknown section(s) {sorted(unknown_top)}; expected [[rule]] and [default]")
    lines = _rule_lines(source)
    rules = []
    seen: set[str] = set()
    for index, raw in enumerate(document.get("rule", [])):
        where = f"{origin} line {lines[index] if index < len(lines) else '?'}"
        rule = _build_rule(raw, where, default_name=f"rule-{index + 1}")
        if rule.name in seen:
            raise RulesError(f"{where}: duplicate rule name {rule.name!r}")
        seen.add(rule.name)
        rules.append((rule.priority, index, rule))
    default = None
    if "default" in document:
        default = _build_rule({"name": "default", **document["default"]}, f"{origin} [default]", "default")
    ordered = tuple(rule for _, _, rule in sorted(rules, key=lambda entry: (entry[0], entry[1])))
    return RuleSet(rules=ordered, default=default)


def _build_rule(raw: dict[str, Any], where: str, default_name: str) -> Rule:
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RULE_KEYS)}")
    owner = raw.get("owner")
    if not isinstance(owner, str) or not owner.strip():
        raise RulesError(f"{where}: 'owner' is required and must be a non-empty string")
    for key in ("keywords_any", "kind", "channel", "status"):
        if key in raw and not (isinstance(raw[key], list) and all(isinstance(v, str) for v in raw[key])):
            raise RulesError(f"{where}: {key!r} must be a list of strings")
    for key in ("min_volume", "priority"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool)):
            raise RulesError(f"{where}: {key!r} must be an integer")
    for key in ("max_sentiment", "min_sentiment"):
        if key in raw and not isinstance(raw[key], int | float):
            raise RulesError(f"{where}: {key!r} must be a number between -1 and 1")
    kinds = {"idea", "complaint", "question", "praise"}
    if "kind" in raw and not set(raw["kind"]) <= kinds:
        raise RulesError(f"{where}: 'kind' values must be among {sorted(kinds)}")
    return Rule(
        name=str(raw.get("name", default_name)),
        owner=owner.strip(),
        priority=int(raw.get("priority", 100)),
        target=str(raw.get("target", "inbox")),
        target_options=dict(raw.get("target_options", {})),
        conditions={key: raw[key] for key in CONDITION_KEYS if key in raw},
    )


_cache: dict[tuple[str, float], RuleSet] = {}


def load_rules(path: Path | str) -> RuleSet:
    """Parse a rules file, re-reading it only when it changes."""
    path = Path(path)
    try:
        stamp = (str(path.resolve()), path.stat().st_mtime)
    except OSError as error:
        raise RulesError(f"{path}: cannot read rules file: {error.strerror}") from error
    if stamp not in _cache:
        _cache[stamp] = parse_rules(path.read_text(encoding="utf-8"), origin=str(path))
    return _cache[stamp]
