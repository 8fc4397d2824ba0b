"""Secrets are never stored: options name an environment variable, and this is the one place that reads it.

Plugins call ``secret_from_env`` too (it is part of the plugin API, with ``core.types``), so every
credential a target or channel uses is looked up the same way and fails the same way when missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from core.errors import ConfigurationError


def env_secret(variable: Any) -> str | None:
    """The value of the environment variable ``variable`` names, or None when it is unnamed, unset or empty."""
    if variable in (None, ""):
        return None
    return os.environ.get(str(variable)) or None


def secret_from_env(options: Mapping[str, Any], option: str, what: str) -> str:
    """The secret in the variable that ``options[option]`` names; a ``ConfigurationError`` saying which
    option and variable when it is missing (the operator's mistake: the caller may retry once it is set)."""
    variable = options.get(option)
    value = env_secret(variable)
    if value is None:
        named = f"${variable}" if variable else f"the variable named by '{option}'"
        raise ConfigurationError(f"{what} needs the '{option}' option and {named} set")
    return value
