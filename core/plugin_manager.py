"""The plugin manager factory: built-ins from ``plugins/`` plus installed entry-point plugins.

There is no module-level manager: callers build one with ``make_plugin_manager()`` and pass it on,
so a plugin registered in one test never leaks into another.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from core import hookspecs
from core.types import ChannelType, TargetType

# Module paths of the built-in plugins; each is an ordinary pluggy plugin.
DEFAULT_PLUGINS = (
    "plugins.redaction",
    "plugins.sentiment",
    "plugins.kind",
    "plugins.sentiment_model",
    "plugins.generic_webhook",
    "plugins.discourse",
    "plugins.github",
    "plugins.zendesk",
    "plugins.intercom",
    "plugins.slack",
    "plugins.teams",
    "plugins.inbox",
    "plugins.rules_owner",
    "plugins.minilm_embedder",
    "plugins.jira",
    "plugins.redmine",
    "plugins.chat_webhook",
    "plugins.email_smtp",
    "plugins.feeds",
    "plugins.app_store",
    "plugins.reddit",
    "plugins.mastodon",
)

LOAD_PLUGINS_ENV = "FEEDBACKLOOP_LOAD_PLUGINS"


def make_plugin_manager(load_installed: bool = True, load_plugins: str | None = None) -> pluggy.PluginManager:
    """A fresh manager with the built-ins and (unless told not to) the installed plugins.

    ``load_plugins`` (default: the ``FEEDBACKLOOP_LOAD_PLUGINS`` variable) is a comma-separated
    allow-list of installed plugin names; an empty string loads no installed plugin.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for module_path in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_path), name=module_path)
    if load_installed:
        allow = load_plugins if load_plugins is not None else os.environ.get(LOAD_PLUGINS_ENV)
        _load_installed(pm, allow)
    pm.check_pending()
    return pm


def _load_installed(pm: pluggy.PluginManager, allow: str | None) -> None:
    if allow is None:
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME)
        return
    for name in sorted({name.strip() for name in allow.split(",") if name.strip()}):
        pm.load_setuptools_entrypoints(hookspecs.PROJECT_NAME, name=name)


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str] = field(default_factory=list)
    builtin: bool = False


def list_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Every registered plugin with its version (when installed from a package) and its hooks."""
    versions = {id(plugin): dist.version for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        infos.append(
            PluginInfo(
                name=name,
                version=versions.get(id(plugin)),
                hooks=hooks,
                builtin=name in DEFAULT_PLUGINS,
            )
        )
    return sorted(infos, key=lambda info: (not info.builtin, info.name))


def _collect(hook: Callable[..., Any]) -> list[Any]:
    collected: list[Any] = []
    hook(register=collected.append)
    return collected


def channel_types(pm: pluggy.PluginManager) -> dict[str, ChannelType]:
    """All registered intake channel types by name; on a name clash the last-registered plugin wins."""
    return _by_name(_collect(pm.hook.register_channel_types), ChannelType)


def target_types(pm: pluggy.PluginManager) -> dict[str, TargetType]:
    """All registered routing target types by name."""
    return _by_name(_collect(pm.hook.register_target_types), TargetType)


def embedders(pm: pluggy.PluginManager) -> dict[str, Callable[..., Any]]:
    """Embedder factories by name, from ``register_embedders``."""
    found: dict[str, Callable[..., Any]] = {}

    def register(name: str, factory: Callable[..., Any]) -> None:
        found.setdefault(name, factory)

    pm.hook.register_embedders(register=register)
    return found


def _by_name(values: list[Any], expected: type[Any]) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for value in values:
        if not isinstance(value, expected):
            raise TypeError(f"plugin registered {value!r}, expected a {expected.__name__}")
        by_name.setdefault(str(value.name), value)
    return by_name
