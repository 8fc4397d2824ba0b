"""Every hook a feedbackloop plugin can implement, each with a one-line docstring.

Plugins write ``from core import hookimpl``. Hooks are called with keyword arguments, so an
implementation may accept fewer arguments than the spec lists. The types are the real ones from
``core.types`` (imported for type checkers only, so loading the specs imports nothing else).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from core.settings import Settings
    from core.types import ChannelType, Embedder, ItemDraft, OwnerChoice, ReplyRequest, TargetType, ThemeView

PROJECT_NAME = "feedbackloop"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_channel_types(register: Callable[[ChannelType], None]) -> None:
    """Register intake channel types by calling ``register(ChannelType(...))``."""


@hookspec
def register_target_types(register: Callable[[TargetType], None]) -> None:
    """Register routing target types by calling ``register(TargetType(...))``."""


@hookspec
def register_embedders(register: Callable[[str, Callable[..., Embedder]], None]) -> None:
    """Register text embedders by calling ``register(name, factory)``; the factory returns an Embedder."""


@hookspec
def enrich_item(item: ItemDraft, settings: Settings) -> None:
    """Enrich a new feedback item in place (sentiment, redaction, kind) before it is stored."""


@hookspec
def enrich_embedded(items: list[ItemDraft], embeddings: NDArray[np.float32], embedder: str, settings: Settings) -> None:
    """Re-score stored items in place (sentiment, kind) from the embeddings the worker just computed for them."""


@hookspec
def redact_item(item: ItemDraft, settings: Settings) -> None:
    """Redact personal data in a draft's url and metadata in place; called for every draft, new or re-sent."""


@hookspec(firstresult=True)
def choose_owner(theme: ThemeView, settings: Settings) -> OwnerChoice | None:
    """Return an ``OwnerChoice`` for a theme, or None to let the next plugin decide."""


@hookspec
def theme_created(theme: ThemeView) -> None:
    """Called after a new theme has been stored."""


@hookspec
def theme_status_changed(theme: ThemeView, old_status: str, new_status: str) -> None:
    """Called after a theme's status has changed."""


@hookspec(firstresult=True, warn_on_impl=DeprecationWarning(
    "the reply_to_thread hook is deprecated and goes in the next release: give your ChannelType "
    "replies=ThreadReplies(thread_of=..., post=...) instead (docs/plugins.md)"))
def reply_to_thread(request: ReplyRequest) -> str | None:
    """Deprecated: post a reply for a channel type without a ``replies`` capability; None to pass."""
