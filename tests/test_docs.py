"""The plugin documentation keeps up with the hookspecs: every hook has a docstring and a section."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from core import hookspecs

PLUGINS_DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HOOKSPECS = sorted(
    (name, function) for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if getattr(function, f"{hookspecs.PROJECT_NAME}_spec", None) is not None
)


def test_hookspecs_found() -> None:
    assert len(HOOKSPECS) >= 7


@pytest.mark.parametrize(("name", "function"), HOOKSPECS, ids=[name for name, _ in HOOKSPECS])
def test_hookspec_has_docstring(name: str, function: object) -> None:
    assert (inspect.getdoc(function) or "").strip(), f"hookspec {name} has no docstring"


@pytest.mark.parametrize("name", [name for name, _ in HOOKSPECS])
def test_hookspec_is_documented(name: str) -> None:
    doc = PLUGINS_DOC.read_text(encoding="utf-8")
    assert re.search(rf"^### {re.escape(name)}\(", doc, re.MULTILINE), (
        f"docs/plugins.md has no '### {name}(' section")
