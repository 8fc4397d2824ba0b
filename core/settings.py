"""Settings from the environment (``FEEDBACKLOOP_*``), built on demand: nothing is read at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACKLOOP_", extra="ignore")

    database_url: str = "sqlite:///./feedbackloop.db"
    admin_key: str | None = None
    # Comma-separated names of installed (entry-point) plugins to load; None loads all, "" loads none.
    load_plugins: str | None = None
    rules_file: Path | None = None
    embedding_model: str = "minilm"
    embed_batch_size: int = 64
    # Theme clusterer (clustering/spectral.py): neighbours in the similarity graph, spectral dimensions,
    # and the cosine-distance cut in that space; a smaller cut gives more, tighter themes.
    cluster_neighbors: int = 20
    cluster_components: int = 64
    cluster_threshold: float = 0.3
    min_theme_size: int = 5
    # The cut's pieces are grouped again when the silhouette rises by more than this ("inf": never).
    cluster_group_margin: float = 0.05
    # An item at least this similar to one a person placed by hand follows it into that theme.
    steer_similarity: float = 0.95
    # When people move two or more items out of one cluster into one theme, the cluster's items that are
    # closer to the moved ones than to the centre of the cluster's other items by more than this (cosine)
    # follow them (decided in two rounds: clustering/steering.py).
    steer_margin: float = 0.05
    public_url: str = "http://127.0.0.1:8000"


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once; tests call ``get_settings.cache_clear()``.

    A malformed ``FEEDBACKLOOP_*`` variable is a ``ConfigurationError`` naming the variable, not a traceback.
    """
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"FEEDBACKLOOP_{'_'.join(str(part) for part in problem['loc']).upper()}: "
                             f"{problem['msg']} (got {problem.get('input')!r})" for problem in error.errors())
        raise ConfigurationError(f"invalid setting - {problems}") from error
