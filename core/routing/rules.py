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
    channel = ["discourse"]      # any item from one of these channels
    min_trend = 2.0              # recent hour at least twice the theme's usual rate
    min_anomaly_score = 3.0      # spike score (see core.themes.signals)
    metadata = { tier = ["enterprise"] }   # any item whose metadata has one of these values

    [[spike]]                    # a separate kind: notify at once when a theme's spike score crosses
    name = "burst"
    owner = "ops"
    target = "chat_webhook"
    target_options = { url = "https://chat.example/hooks/abc" }
    threshold = 3.0              # spike score
    min_recent = 3               # items in the last hour, so two stray items are never a spike
    cooldown_minutes = 60        # at most one notice per theme per cooldown
    keywords_any = ["outage"]    # optional, the same conditions as rules

Errors name the file, the line of the offending rule, and the reason. Target options are checked against
the outbound policy when the file is read or replaced (``core.outbound``: URLs, hosts and the variables
``*_env`` options name), and again by the target on every call.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from core.audit import record
from core.errors import Conflict, InvalidInput
from core.outbound import OutboundRefused, check_destination_options
from core.secrets import SecretEnvRefused
from core.settings import Settings, get_settings
from core.types import OwnerChoice, ThemeView

CONDITION_KEYS = {"keywords_any", "label_contains", "kind", "channel", "min_volume", "max_sentiment",
                  "min_sentiment", "status", "min_trend", "min_anomaly_score", "metadata"}
RULE_KEYS = CONDITION_KEYS | {"name", "priority", "owner", "target", "target_options"}
SPIKE_KEYS = CONDITION_KEYS | {"name", "owner", "target", "target_options", "threshold", "min_recent",
                               "cooldown_minutes"}
SECTIONS = ("rule", "spike", "default")


class RulesError(InvalidInput):
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


def _words(label: str, keywords: Sequence[str]) -> set[str]:
    text = " ".join([label, *keywords]).lower()
    return set(re.findall(r"[a-z0-9]+", text)) | {k.lower() for k in keywords}


# Conditions a theme's own row answers: a spike check tests them before it builds the theme's view.
ROW_CONDITIONS = frozenset({"keywords_any", "label_contains", "status"})


def _row_condition_holds(key: str, value: Any, label: str, keywords: Sequence[str], status: str) -> bool:
    if key == "keywords_any":
        words = _words(label, keywords)
        return any(str(v).lower() in words for v in value)
    if key == "label_contains":
        return str(value).lower() in label.lower()
    return status in value  # "status"


def _condition_holds(key: str, value: Any, theme: ThemeView) -> bool:
    if key in ROW_CONDITIONS:
        return _row_condition_holds(key, value, theme.label, theme.keywords, theme.status)
    if key == "kind":
        return theme.dominant_kind in value
    if key == "channel":
        return any(channel in value for channel in theme.channels)
    if key == "min_volume":
        return bool(theme.volume >= value)
    if key == "max_sentiment":
        return bool(theme.mean_sentiment <= value)
    if key == "min_sentiment":
        return bool(theme.mean_sentiment >= value)
    if key == "min_trend":
        return theme.trend is not None and theme.trend >= value
    if key == "min_anomaly_score":
        return theme.anomaly_score is not None and theme.anomaly_score >= value
    if key == "metadata":
        return all(any(theme.metadata_counts.get(field_name, {}).get(str(v), 0) > 0 for v in allowed)
                   for field_name, allowed in value.items())
    raise RulesError(f"unknown condition {key!r}")


@dataclass(frozen=True)
class SpikeRule:
    """Notify ``owner`` through ``target`` at once when a matching theme's spike score crosses ``threshold``."""

    name: str
    owner: str
    target: str
    target_options: dict[str, Any] = field(default_factory=dict)
    threshold: float = 3.0
    min_recent: int = 3
    cooldown_minutes: int = 60
    conditions: dict[str, Any] = field(default_factory=dict)

    def matches(self, theme: ThemeView) -> bool:
        return all(_condition_holds(key, value, theme) for key, value in self.conditions.items())

    def may_match(self, label: str, keywords: Sequence[str], status: str) -> bool:
        """False when the theme's own row already fails a condition (``matches`` would be False)."""
        return all(_row_condition_holds(key, value, label, keywords, status)
                   for key, value in self.conditions.items() if key in ROW_CONDITIONS)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    default: Rule | None
    spikes: tuple[SpikeRule, ...] = ()

    def decide(self, theme: ThemeView) -> OwnerChoice | None:
        for rule in self.rules:
            if rule.matches(theme):
                return OwnerChoice(rule.owner, rule.target, rule.target_options, rule.name)
        if self.default is not None:
            d = self.default
            return OwnerChoice(d.owner, d.target, d.target_options, "default")
        return None


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_Entry = TypeVar("_Entry", bound=_Named)


def _build_section(document: dict[str, Any], source: str, origin: str, section: str,
                   build: Callable[[dict[str, Any], str, str], _Entry], seen: set[str]) -> list[_Entry]:
    """Every ``[[section]]`` table built, each error naming its line; names are unique across sections."""
    lines = _section_lines(source, section)
    built = []
    for index, raw in enumerate(document.get(section, [])):
        where = f"{origin} line {lines[index] if index < len(lines) else '?'}"
        entry = build(raw, where, f"{section}-{index + 1}")
        if entry.name in seen:
            raise RulesError(f"{where}: duplicate rule name {entry.name!r}")
        seen.add(entry.name)
        built.append(entry)
    return built


def _section_lines(source: str, section: str) -> list[int]:
    header = f"[[{section}]]"
    return [number for number, line in enumerate(source.splitlines(), 1) if line.split("#")[0].strip() == header]


def parse_rules(source: str, origin: str = "rules", settings: Settings | None = None) -> RuleSet:
    """The rules in ``source``; ``settings`` (None: the process's) decide which target options may be used."""
    try:
        document = tomllib.loads(source)
    except tomllib.TOMLDecodeError as error:
        raise RulesError(f"{origin}: not valid TOML: {error}") from error
    unknown_top = set(document) - set(SECTIONS)
    if unknown_top:
        raise RulesError(f"{origin}: unknown section(s) {sorted(unknown_top)}; expected [[rule]], [[spike]] "
                         f"and [default]")
    for section in ("rule", "spike"):
        if section in document and not isinstance(document[section], list):
            raise RulesError(f"{origin}: {section!r} must be written [[{section}]] (an array of tables)")
    seen: set[str] = set()
    rules = _build_section(document, source, origin, "rule", _build_rule, seen)
    default = None
    if "default" in document:
        default = _build_rule({"name": "default", **document["default"]}, f"{origin} [default]", "default")
    ordered = tuple(sorted(rules, key=lambda rule: rule.priority))  # stable: file order breaks ties
    spikes = _build_section(document, source, origin, "spike", _build_spike, seen)
    rule_set = RuleSet(rules=ordered, default=default, spikes=tuple(spikes))
    _check_destinations(rule_set, origin, settings)
    return rule_set


def _check_destinations(rules: RuleSet, origin: str, settings: Settings | None) -> None:
    """Every rule's target options against the outbound policy, so a bad URL or variable is refused on saving."""
    entries: list[Rule | SpikeRule] = [*rules.rules, *rules.spikes, *([rules.default] if rules.default else [])]
    for entry in entries:
        try:
            check_destination_options(entry.target_options, settings, f"{origin}: rule {entry.name!r}")
        except (OutboundRefused, SecretEnvRefused) as error:
            raise RulesError(error.message) from error


def _build_spike(raw: dict[str, Any], where: str, default_name: str) -> SpikeRule:
    unknown = set(raw) - SPIKE_KEYS
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)}; allowed in [[spike]]: {sorted(SPIKE_KEYS)}")
    owner = _check_common(raw, where)
    if not isinstance(raw.get("target"), str) or not raw["target"].strip():
        raise RulesError(f"{where}: 'target' is required in [[spike]] (where the notice goes)")
    if "threshold" in raw and (not isinstance(raw["threshold"], int | float) or isinstance(raw["threshold"], bool)
                               or raw["threshold"] <= 0):
        raise RulesError(f"{where}: 'threshold' must be a positive number (a spike score)")
    for key in ("min_recent", "cooldown_minutes"):
        if key in raw and (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 0):
            raise RulesError(f"{where}: {key!r} must be a non-negative integer")
    return SpikeRule(
        name=str(raw.get("name", default_name)), owner=owner, target=raw["target"].strip(),
        target_options=dict(raw.get("target_options", {})), threshold=float(raw.get("threshold", 3.0)),
        min_recent=int(raw.get("min_recent", 3)), cooldown_minutes=int(raw.get("cooldown_minutes", 60)),
        conditions={key: raw[key] for key in CONDITION_KEYS if key in raw},
    )


def _check_common(raw: dict[str, Any], where: str) -> str:
    """Checks shared by rules and spike rules; returns the owner."""
    owner = raw.get("owner")
    if not isinstance(owner, str) or not owner.strip():
        raise RulesError(f"{where}: 'owner' is required and must be a non-empty string")
    if "target_options" in raw and not isinstance(raw["target_options"], dict):
        raise RulesError(f"{where}: 'target_options' must be a table, e.g. {{ project = \"OPS\" }}")
    for key in ("min_trend", "min_anomaly_score"):
        if key in raw and (not isinstance(raw[key], int | float) or isinstance(raw[key], bool)):
            raise RulesError(f"{where}: {key!r} must be a number")
    if "metadata" in raw:
        metadata = raw["metadata"]
        if not isinstance(metadata, dict) or not all(
                isinstance(values, list) and all(isinstance(v, str | int | bool) for v in values)
                for values in metadata.values()):
            raise RulesError(f"{where}: 'metadata' must be a table of lists, e.g. {{ tier = [\"enterprise\"] }}")
    return owner.strip()


def _build_rule(raw: dict[str, Any], where: str, default_name: str) -> Rule:
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise RulesError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RULE_KEYS)}")
    owner = _check_common(raw, where)
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
        owner=owner,
        priority=int(raw.get("priority", 100)),
        target=str(raw.get("target", "inbox")),
        target_options=dict(raw.get("target_options", {})),
        conditions={key: raw[key] for key in CONDITION_KEYS if key in raw},
    )


_cache: dict[tuple[str, float, str, str, str], RuleSet] = {}


def load_rules(path: Path | str, settings: Settings | None = None) -> RuleSet:
    """Parse the configured rules file, re-reading it only when it changes.

    A broken configured file is a conflict (409) rather than bad input: the request was fine, the file
    an admin left behind is not, and it stays broken until someone fixes it.
    """
    path = Path(path)
    settings = settings if settings is not None else get_settings()
    try:
        # The outbound settings are part of the key: what a file may name depends on them.
        stamp = (str(path.resolve()), path.stat().st_mtime, settings.outbound_allowed,
                 settings.outbound_allow_private, settings.secret_env_allowed)
    except OSError as error:
        raise RulesError(f"{path}: cannot read rules file: {error.strerror}", status_code=409) from error
    if stamp not in _cache:
        try:
            _cache[stamp] = parse_rules(path.read_text(encoding="utf-8"), origin=str(path), settings=settings)
        except RulesError as error:
            raise RulesError(error.message, status_code=409) from error
    return _cache[stamp]


def configured_rules_path(rules_file: Path | None) -> Path:
    """The rules file routing reads; a conflict when none is configured."""
    if rules_file is None:
        raise Conflict("no rules file configured; set FEEDBACKLOOP_RULES_FILE")
    return Path(rules_file)


def replace_rules_file(path: Path, source: str, settings: Settings | None = None) -> RuleSet:
    """Check ``source`` and put it in place of the rules file; an invalid one leaves the old file as it was.

    Written beside the file and renamed over it, so a reader never sees half a file.
    """
    rules = parse_rules(source, origin="rules", settings=settings)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(source)
    os.replace(temporary, path)
    return rules


def replace_rules(session: Session, path: Path, source: str, actor: str, settings: Settings | None = None) -> RuleSet:
    """``replace_rules_file`` with an audit entry in ``session``; a refused file raises, and the caller's
    rollback takes the entry back. The entry names the file by digest, not content: rules carry target
    options such as webhook URLs.
    """
    try:
        before: str | None = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        before = None
    record(session, actor, "replace_rules", "rules_file", path.name,
           {"file": str(path), "sha256_before": before, "sha256_after": hashlib.sha256(source.encode()).hexdigest()})
    session.flush()
    return replace_rules_file(path, source, settings)
