"""Every hook a feedbackloop plugin can implement, each with a one-line docstring.

Plugins write ``from core import hookimpl``. Hooks are called with keyword arguments, so an
implementation may accept fewer arguments than the spec lists.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "feedbackloop"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_channel_types(register: Any) -> None:
    """Register intake channel types by calling ``register(ChannelType(...))``."""


@hookspec
def register_target_types(register: Any) -> None:
    """Register routing target types by calling ``register(TargetType(...))``."""


@hookspec
def register_embedders(register: Any) -> None:
    """Register text embedders by calling ``register(name, factory)``; the factory returns an Embedder."""


@hookspec
def enrich_item(item: Any, settings: Any) -> None:
    """Enrich a new feedback item in place (sentiment, redaction, kind) before it is stored."""


@hookspec(firstresult=True)
def choose_owner(theme: Any, settings: Any) -> Any:
    """Return an ``OwnerChoice`` for a theme, or None to let the next plugin decide."""


@hookspec
def theme_created(theme: Any) -> None:
    """Called after a new theme has been stored."""


@hookspec
def theme_status_changed(theme: Any, old_status: str, new_status: str) -> None:
    """Called after a theme's status has changed."""


@hookspec(firstresult=True)
def reply_to_thread(request: Any) -> Any:
    """Post ``request.text`` (a ``ReplyRequest``) in the thread it names if this plugin handles its channel type;
    return a reference to the reply, or None to pass."""
