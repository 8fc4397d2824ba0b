"""Ownership rules: first match by priority, a default, and errors that name the line and the reason."""

from __future__ import annotations

import pytest

from core.demo import DEMO_RULES
from core.routing.rules import RulesError, load_rules, parse_rules
from core.types import ThemeView


def view(label: str, keywords: list[str], kinds: dict[str, int] | None = None, volume: int = 10,
         sentiment: float = 0.0) -> ThemeView:
    return ThemeView(id=1, label=label, keywords=keywords, status="new", volume=volume, share_of_voice=0.1,
                     mean_sentiment=sentiment, kinds=kinds or {"complaint": volume}, channels={"api": volume},
                     quotes=[])


RULES = """
[default]
owner = "product"

[[rule]]
name = "late"
priority = 50
owner = "cards"
keywords_any = ["card"]

[[rule]]
name = "angry-cards"
priority = 10
owner = "escalations"
keywords_any = ["card"]
max_sentiment = -0.5
min_volume = 5
"""


def test_priority_then_default() -> None:
    rules = parse_rules(RULES)
    assert rules.decide(view("Card late", ["card", "late"], sentiment=-0.7)).rule == "angry-cards"
    assert rules.decide(view("Card late", ["card", "late"], sentiment=-0.1)).owner == "cards"
    fallback = rules.decide(view("Dark mode", ["dark", "mode"]))
    assert fallback is not None and (fallback.owner, fallback.rule) == ("product", "default")


def test_kind_condition() -> None:
    rules = parse_rules('[[rule]]\nname = "ideas"\nowner = "product"\nkind = ["idea"]\n')
    assert rules.decide(view("x", ["x"], kinds={"idea": 5, "complaint": 1})) is not None
    assert rules.decide(view("x", ["x"], kinds={"complaint": 5})) is None


@pytest.mark.parametrize(("source", "expected"), [
    ('[[rule]]\nname = "a"\nowner = "x"\n\n[[rule]]\nname = "b"\n', "line 5: 'owner' is required"),
    ('[[rule]]\nowner = "x"\nkeywords = ["a"]\n', "line 1: unknown key(s) ['keywords']"),
    ('[[rule]]\nowner = "x"\nkind = ["rant"]\n', "'kind' values must be among"),
    ('[[rule]]\nowner = "x"\nmin_volume = "ten"\n', "'min_volume' must be an integer"),
    ('[[rule]]\nowner = "x"\nkeywords_any = "card"\n', "'keywords_any' must be a list of strings"),
    ('[[rule]]\nname = "a"\nowner = "x"\n[[rule]]\nname = "a"\nowner = "y"\n', "line 4: duplicate rule name"),
    ('[[rule]\nowner = "x"\n', "not valid TOML"),
    ('[rules]\nowner = "x"\n', "unknown section"),
])
def test_invalid_rules_name_line_and_reason(source: str, expected: str) -> None:
    with pytest.raises(RulesError) as error:
        parse_rules(source, origin="rules.toml")
    assert expected in str(error.value) and str(error.value).startswith("rules.toml")


def test_demo_rules_parse() -> None:
    rules = load_rules(DEMO_RULES)
    assert {rule.owner for rule in rules.rules} >= {"cards", "payments-ops", "it-security", "product"}
    assert rules.default is not None


def test_missing_rules_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "absent.toml")


def signal_view(channels: dict[str, int] | None = None, trend: float | None = None, anomaly: float | None = None,
                metadata: dict[str, dict[str, int]] | None = None) -> ThemeView:
    return ThemeView(id=1, label="Checkout", keywords=["checkout"], status="new", volume=10, share_of_voice=0.1,
                     mean_sentiment=0.0, kinds={"complaint": 10}, channels=channels or {"api": 10}, quotes=[],
                     trend=trend, anomaly_score=anomaly, metadata_counts=metadata or {})


def test_channel_trend_spike_and_metadata_conditions() -> None:
    rules = parse_rules("""
[[rule]]
name = "vip"
priority = 1
owner = "account-management"
metadata = { customer_tier = ["enterprise", "gold"] }

[[rule]]
name = "forum-surge"
priority = 2
owner = "community"
channel = ["forum"]
min_trend = 3.0

[[rule]]
name = "spiking"
priority = 3
owner = "ops"
min_anomaly_score = 4
""")
    assert rules.decide(signal_view(metadata={"customer_tier": {"gold": 1, "free": 9}})).rule == "vip"
    assert rules.decide(signal_view(metadata={"customer_tier": {"free": 9}})) is None
    assert rules.decide(signal_view(channels={"forum": 2}, trend=3.5)).rule == "forum-surge"
    assert rules.decide(signal_view(channels={"forum": 2}, trend=1.0)) is None
    assert rules.decide(signal_view(channels={"api": 2}, trend=9.0)) is None
    assert rules.decide(signal_view(anomaly=4.5)).rule == "spiking"
    assert rules.decide(signal_view(anomaly=None)) is None


def test_spike_rules_are_a_separate_kind() -> None:
    rules = parse_rules('[default]\nowner = "product"\n\n[[spike]]\nname = "burst"\nowner = "ops"\n'
                        'target = "chat_webhook"\ntarget_options = { url = "http://chat" }\nthreshold = 2.5\n'
                        'cooldown_minutes = 15\n')
    (spike,) = rules.spikes
    assert (spike.name, spike.owner, spike.threshold, spike.cooldown_minutes, spike.min_recent) == (
        "burst", "ops", 2.5, 15, 3)
    assert rules.rules == () and rules.default is not None


@pytest.mark.parametrize(("source", "expected"), [
    ('[[rule]]\nowner = "x"\nmetadata = ["enterprise"]\n', "line 1: 'metadata' must be a table of lists"),
    ('[[rule]]\nowner = "x"\nmin_trend = "up"\n', "'min_trend' must be a number"),
    ('[[rule]]\nowner = "x"\ntarget_options = "OPS"\n', "'target_options' must be a table"),
    ('[default]\nowner = "p"\n\n[[spike]]\nowner = "ops"\n', "line 4: 'target' is required in [[spike]]"),
    ('[[spike]]\nowner = "o"\ntarget = "t"\nthreshold = -1\n', "'threshold' must be a positive number"),
    ('[[spike]]\nowner = "o"\ntarget = "t"\npriority = 1\n', "unknown key(s) ['priority']"),
])
def test_invalid_new_conditions_name_line_and_reason(source: str, expected: str) -> None:
    with pytest.raises(RulesError) as error:
        parse_rules(source, origin="rules.toml")
    assert expected in str(error.value)
