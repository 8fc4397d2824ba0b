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
