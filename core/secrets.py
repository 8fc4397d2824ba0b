"""Secrets are never stored: options name an environment variable, and this is the one place that reads it.

Plugins call ``secret_from_env`` too (it is part of the plugin API, with ``core.types``), so every
credential a target or channel uses is looked up the same way and fails the same way when missing.

An option may only name a variable the operator allowed (``FEEDBACKLOOP_SECRET_ENV_ALLOWED``, by default
``FEEDBACKLOOP_SECRET_*``), and never one of feedbackloop's own settings: whoever can edit rules or
channels must not be able to send the admin key or the database URL to a tracker as its "API key".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from core.errors import ConfigurationError, InvalidInput
from core.settings import Settings, get_settings

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SETTINGS_PREFIX = "FEEDBACKLOOP_"
# Read by the core under their own names (core/routing/tracker_status.py), never on an option's behalf.
OWN_SECRET_PATTERNS = ("FEEDBACKLOOP_*_WEBHOOK_SECRET",)


class SecretEnvRefused(InvalidInput):
    """An option names an environment variable it may not read."""


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else get_settings()


def own_setting(name: str) -> bool:
    """Whether ``name`` is one of feedbackloop's own settings or secrets."""
    if not name.upper().startswith(SETTINGS_PREFIX):
        return False
    fields = {SETTINGS_PREFIX + field.upper() for field in Settings.model_fields}
    return name.upper() in fields or any(fnmatchcase(name.upper(), pattern) for pattern in OWN_SECRET_PATTERNS)


def check_secret_env(variable: Any, settings: Settings | None, what: str) -> str:
    """``variable`` if an option may name it; ``SecretEnvRefused`` saying why otherwise."""
    name = str(variable)
    if not ENV_NAME.match(name):
        raise SecretEnvRefused(f"{what}: {name[:130]!r} is not an environment variable name")
    if own_setting(name):
        raise SecretEnvRefused(f"{what}: ${name} is one of feedbackloop's own settings and is never sent anywhere")
    patterns = [part.strip() for part in _settings(settings).secret_env_allowed.split(",") if part.strip()]
    if not any(fnmatchcase(name, pattern) for pattern in patterns):
        raise SecretEnvRefused(f"{what}: ${name} is not an allowed variable; FEEDBACKLOOP_SECRET_ENV_ALLOWED "
                               f"allows {', '.join(patterns) or 'none'}")
    return name


def env_secret(variable: Any) -> str | None:
    """The value of the environment variable ``variable`` names, or None when it is unnamed, unset or empty.

    Unchecked: for the core's own variables only. Anything an option or a channel names goes through
    ``named_secret`` or ``secret_from_env``.
    """
    if variable in (None, ""):
        return None
    return os.environ.get(str(variable)) or None


def named_secret(variable: Any, settings: Settings | None, what: str) -> str | None:
    """The value of an allowed variable (None when unnamed, unset or empty); ``SecretEnvRefused`` for a
    variable that may not be read."""
    if variable in (None, ""):
        return None
    return env_secret(check_secret_env(variable, settings, what))


def secret_from_env(options: Mapping[str, Any], option: str, what: str, settings: Settings | None = None) -> str:
    """The secret in the variable that ``options[option]`` names; a ``ConfigurationError`` saying which
    option and variable when it is missing (the operator's mistake: the caller may retry once it is set),
    ``SecretEnvRefused`` when the variable may not be named. ``settings``: the installation's (a request's
    ``settings``); None reads the process's."""
    variable = options.get(option)
    value = named_secret(variable, settings, f"{what}: option {option!r}")
    if value is None:
        named = f"${variable}" if variable else f"the variable named by '{option}'"
        raise ConfigurationError(f"{what} needs the '{option}' option and {named} set")
    return value


def optional_secret_from_env(options: Mapping[str, Any], option: str, what: str,
                             settings: Settings | None = None) -> str | None:
    """``secret_from_env`` for an optional credential: None when the option is not given."""
    if options.get(option) in (None, ""):
        return None
    return secret_from_env(options, option, what, settings)
