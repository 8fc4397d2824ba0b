"""The plugin documentation keeps up with the hookspecs: every hook has a docstring and a section headed by
its full signature (names, types and return type, exactly as in ``core/hookspecs.py``)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
HOOKSPECS = sorted(
    (name, function) for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if getattr(function, f"{hookspecs.PROJECT_NAME}_spec", None) is not None
)


def written_signature(name: str, function: Callable[..., Any]) -> str:
    """``name(arg: Type, ...) -> Return`` as the spec's source spells it (annotations stay strings)."""
    signature = inspect.signature(function)
    parameters = ", ".join(f"{parameter.name}: {parameter.annotation}" for parameter in signature.parameters.values())
    return f"{name}({parameters}) -> {signature.return_annotation}"


def test_hookspecs_found() -> None:
    assert len(HOOKSPECS) >= 8


@pytest.mark.parametrize(("name", "function"), HOOKSPECS, ids=[name for name, _ in HOOKSPECS])
def test_hookspec_has_docstring(name: str, function: Callable[..., Any]) -> None:
    assert (inspect.getdoc(function) or "").strip(), f"hookspec {name} has no docstring"


@pytest.mark.parametrize(("name", "function"), HOOKSPECS, ids=[name for name, _ in HOOKSPECS])
def test_hookspec_is_documented_with_its_full_signature(name: str, function: Callable[..., Any]) -> None:
    doc = PLUGINS_DOC.read_text(encoding="utf-8")
    headings = re.findall(rf"^### ({re.escape(name)}\(.*)$", doc, re.MULTILINE)
    assert headings, f"docs/plugins.md has no '### {name}(' section"
    assert headings == [written_signature(name, function)], (
        f"docs/plugins.md documents {headings}, the spec is {written_signature(name, function)}")


def test_a_changed_signature_is_caught() -> None:
    def enrich_item(item: ItemDraft, settings: Settings, extra: int) -> None:  # noqa: F821 (names only)
        """Spec with an argument the docs do not have."""

    doc = PLUGINS_DOC.read_text(encoding="utf-8")
    assert f"### {written_signature('enrich_item', enrich_item)}" not in doc


def test_architecture_doc_names_modules_that_exist() -> None:
    """docs/architecture.md walks one item from webhook to ticket; every module it names must exist."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:core|api|plugins|clustering)/[\w/]+\.py)", text))
    assert len(named) >= 10
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def builtin_channel_types() -> dict[str, Any]:
    """The channel types feedbackloop ships, without installed third-party plugins."""
    from core.plugin_manager import make_plugin_manager
    from core.types import ChannelType

    found: dict[str, ChannelType] = {}
    make_plugin_manager(load_installed=False).hook.register_channel_types(
        register=lambda channel_type: found.setdefault(channel_type.name, channel_type))
    return found


def channel_type_section(name: str) -> str:
    text = PLUGINS_DOC.read_text(encoding="utf-8")
    builtins = text.split("## Built-in channel types", 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"^### `{re.escape(name)}`\n(.*?)(?=^### |\Z)", builtins, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else ""


@pytest.mark.parametrize("name", sorted(builtin_channel_types()))
def test_every_built_in_channel_type_is_documented_with_its_options(name: str) -> None:
    channel_type = builtin_channel_types()[name]
    assert channel_type.options, f"{name} declares no options: channels add would take any typo"
    section = channel_type_section(name)
    assert section, f"docs/plugins.md has no '### `{name}`' under 'Built-in channel types'"
    assert sorted(option for option in channel_type.options if f"`{option}`" not in section) == []


def test_an_undocumented_channel_option_is_caught() -> None:
    assert "`exclude_staff`" in channel_type_section("discourse")
    assert channel_type_section("no-such-type") == ""
