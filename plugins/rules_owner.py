"""Built-in owner chooser: the ownership rules file, consulted last (``trylast``) as the fallback."""

from __future__ import annotations

from core import hookimpl
from core.routing.rules import load_rules
from core.settings import Settings
from core.types import OwnerChoice, ThemeView


@hookimpl(trylast=True)
def choose_owner(theme: ThemeView, settings: Settings) -> OwnerChoice | None:
    if settings.rules_file is None:
        return None
    return load_rules(settings.rules_file, settings).decide(theme)
