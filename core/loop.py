"""``FeedbackLoop``: the one object the CLI, the API and workers hold; it owns the engine and plugins."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import pluggy
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.db import make_engine, make_session_factory, migrate, session_scope
from core.errors import ConfigurationError
from core.intake.pseudonyms import Pseudonyms, load_pseudonyms
from core.plugin_manager import channel_types, embedders, make_plugin_manager, target_types
from core.settings import Settings, embedding_cache_dir
from core.tasks.kicks import Kicker
from core.types import ChannelType, TargetType


class FeedbackLoop:
    def __init__(self, settings: Settings, pm: pluggy.PluginManager | None = None,
                 engine: Engine | None = None, serving: bool = False, embedder: Any | None = None) -> None:
        self.settings = settings
        self.pm = pm if pm is not None else make_plugin_manager(load_plugins=settings.load_plugins)
        self.engine = engine if engine is not None else make_engine(
            settings.database_url, background_checkpoints=serving, pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)
        # Given, it stands in for the configured model (tests, benchmarks), which is then never loaded.
        self._embedder: Any = embedder

    def migrate(self) -> None:
        migrate(self.engine)
        # On start: the key file is made (or an earlier version's key moved out of the database) and checked now,
        # before any request, rather than inside the first transaction that stores an item.
        _ = self.pseudonyms

    @cached_property
    def pseudonyms(self) -> Pseudonyms:
        """This installation's keyed pseudonyms; the key is read once per loop."""
        return load_pseudonyms(self.settings, self.sessions)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.sessions) as session:
            yield session

    @cached_property
    def kicks(self) -> Kicker:
        """Tells Celery workers about new work after its commit (core/tasks/kicks.py); without a broker, nothing."""
        return Kicker(self.settings.broker_url, self.settings.broker_queue_prefix)

    @cached_property
    def channel_types(self) -> dict[str, ChannelType]:
        return channel_types(self.pm)

    @cached_property
    def target_types(self) -> dict[str, TargetType]:
        return target_types(self.pm)

    @property
    def embedder(self) -> Any:
        """The embedder passed in, else the configured one, built on first use (loading a model takes seconds)."""
        if self._embedder is None:
            factories = embedders(self.pm)
            name = self.settings.embedding_model
            if name not in factories:
                raise ConfigurationError(f"unknown embedding model {name!r}; registered: {sorted(factories)}")
            self._embedder = factories[name](**self._embedder_options(name, factories[name]))
        return self._embedder

    def _embedder_options(self, name: str, factory: Any) -> dict[str, Any]:
        """Keyword arguments for the factory; a backend other than torch only for a factory that takes one."""
        options: dict[str, Any] = {"batch_size": self.settings.embed_batch_size}
        backend = self.settings.embedding_backend
        if backend != "torch":
            if "backend" not in inspect.signature(factory).parameters:
                raise ConfigurationError(f"the embedding model {name!r} has no backend option; "
                                         f"FEEDBACKLOOP_EMBEDDING_BACKEND={backend} needs one that does (minilm)")
            options.update(backend=backend, cache_dir=str(embedding_cache_dir(self.settings)))
        return options

    def close(self) -> None:
        self.engine.dispose()
