"""Settings from the environment (``FEEDBACKLOOP_*``), built on demand: nothing is read at import."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError

# Storages the `limits` library can share rate-limit budgets in without further packages (redis-py is a dependency).
# Brokers Celery reaches with what feedbackloop installs (kombu's py-amqp and redis-py transports).
BROKER_SCHEMES = ("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")
RATE_LIMIT_STORAGE_SCHEMES = frozenset({"memory", "redis", "rediss", "redis+unix", "redis+cluster"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDBACKLOOP_", extra="ignore")

    database_url: str = "sqlite:///./feedbackloop.db"
    # PostgreSQL connections per process (each server process, each worker pool process): kept open, and
    # opened beyond that under load; the server's max_connections must cover every process's sum.
    database_pool_size: int = Field(default=5, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    admin_key: str | None = None
    # Comma-separated names of installed (entry-point) plugins to load; None loads all, "" loads none.
    load_plugins: str | None = None
    rules_file: Path | None = None
    embedding_model: str = "minilm"
    embed_batch_size: int = 64
    # How the embedding model runs (FEEDBACKLOOP_EMBEDDING_BACKEND): "torch" (sentence-transformers), "onnx" (ONNX
    # Runtime on a local export; extra "onnx") or "model2vec" (a static model distilled from it: much faster,
    # coarser; extra "model2vec"). Each is built from the packaged model at first use or by `feedbackloop
    # embeddings prepare`, into embedding_cache_dir (default $XDG_CACHE_HOME/feedbackloop, else
    # ~/.cache/feedbackloop). Their vectors are stored under different model names and never mixed.
    embedding_backend: Literal["torch", "onnx", "model2vec"] = "torch"
    embedding_cache_dir: Path | None = None
    # Sentiment and kind: intake always scores with VADER and the rules (plugins/sentiment.py, plugins/kind.py);
    # "minilm-lr" re-scores each item from its MiniLM embedding once the worker has embedded it
    # (plugins/sentiment_model.py, no second embedding); "rules" keeps the intake scores.
    enrichment_model: Literal["minilm-lr", "rules"] = "minilm-lr"
    # Theme clusterer (clustering/spectral.py): neighbours in the similarity graph, spectral dimensions,
    # and the cosine-distance cut in that space; a smaller cut gives more, tighter themes.
    cluster_neighbors: int = 20
    cluster_components: int = 64
    cluster_threshold: float = 0.3
    min_theme_size: int = 5
    # The cut's pieces are grouped again, and a second cut in twice the dimensions replaces the first, only
    # when the silhouette rises by more than this ("inf": never).
    cluster_group_margin: float = 0.05
    # An item at least this similar to one a person placed by hand follows it into that theme.
    steer_similarity: float = 0.95
    # When people move two or more items out of one cluster into one theme, the cluster's items that are
    # closer to the moved ones than to the centre of the cluster's other items by more than this (cosine)
    # follow them (decided in two rounds: clustering/steering.py).
    steer_margin: float = 0.05
    public_url: str = "http://127.0.0.1:8000"
    # The public "you said, we did" page (/public) and its Atom feed (/public/feed.atom), without sign-in: only
    # the themes product managers published, in their words (core/community/published.py); off: both 404.
    public_page: bool = False
    # Request bodies on /api/v1 (api/body_limits.py): at most this many bytes are read, before any parsing;
    # more is refused with 413. 32 MiB holds a batch of 1,000 items with every field at its longest
    # (20,000-character text, 8 KiB metadata: api/inputs.py) as plain JSON.
    api_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # What leaves, and with which credentials (core/outbound.py, core/secrets.py). outbound_allowed: comma-separated
    # hosts ("jira.example.com", "*.example.com") and URL prefixes ("https://hooks.slack.com/services/") that
    # targets and replies may call; empty: any public host (destinations come only from rules and channel options,
    # which need an admin key). outbound_allow_private: hosts, addresses and CIDRs ("redmine.lan,10.0.5.0/24") that
    # may be, or resolve to, private, loopback or link-local addresses, refused otherwise. secret_env_allowed:
    # comma-separated patterns (fnmatch, case-sensitive) of the variables `*_env` options and channel secrets may
    # name; feedbackloop's own settings (FEEDBACKLOOP_ADMIN_KEY, FEEDBACKLOOP_DATABASE_URL...) and tracker
    # webhook secrets (FEEDBACKLOOP_*_WEBHOOK_SECRET) are refused whatever the patterns say.
    outbound_allowed: str = ""
    outbound_allow_private: str = ""
    secret_env_allowed: str = "FEEDBACKLOOP_SECRET_*"
    # Pseudonyms (core/intake/pseudonyms.py): the secret key of author pseudonyms and of ids derived from what
    # people wrote, never kept in the database. FEEDBACKLOOP_PSEUDONYM_KEY (64+ hex characters) wins; else the file
    # pseudonym_key_file, by default <secrets_dir>/pseudonym_key, secrets_dir being .feedbackloop/ next to a SQLite
    # file (./.feedbackloop/ for other databases). The file is made on first start (0600) unless
    # pseudonym_key_create is false; every machine of one database needs the same key, or it refuses to start.
    pseudonym_key: SecretStr | None = None
    secrets_dir: Path | None = None
    pseudonym_key_file: Path | None = None
    pseudonym_key_create: bool = True
    # Redaction (plugins/redaction.py): the regions whose national phone formats ("030 901820", "4155552671") are
    # recognised besides international ones (+49 ..., 0049 ...), as ISO 3166 codes; each one checks every number.
    redaction_phone_regions: str = "US,GB,DE,FR"
    # Rate limits (api/rate_limits.py), in the `limits` library's notation ("600/minute", "20/second;600/minute";
    # "" switches one off): per API key on /api/v1, per webhook channel (/webhooks/{channel}) and tracker
    # (/trackers/{tracker}/webhook), and per client address for /api/v1 requests answered 401, which slows key
    # guessing. Budgets live in the storage: "memory://" is per process (each of `serve --workers N` has its own);
    # "redis://host:6379/0" shares them between processes and hosts.
    rate_limit_per_key: str = "600/minute"
    rate_limit_per_channel: str = "1200/minute"
    rate_limit_failed_auth_per_address: str = "30/minute"
    rate_limit_storage: str = "memory://"
    # The workspace's sign-in (core/auth/web_sessions.py): a session ends after this long without a request,
    # or this long after sign-in, whichever comes first. cookie_secure: send the session cookie only over
    # HTTPS; unset, it is Secure except on plain-http loopback addresses (a laptop's `make run`).
    session_idle_minutes: int = Field(default=8 * 60, ge=1)
    session_max_hours: int = Field(default=7 * 24, ge=1)
    cookie_secure: bool | None = None
    # OpenID Connect sign-in (api/pages/oidc.py), on when oidc_issuer is set: the provider's issuer URL exactly as
    # its ID tokens name it (discovery is read from <issuer>/.well-known/openid-configuration), this server's
    # confidential client at the provider (its redirect URI is <public_url>/auth/oidc/callback), the role of
    # people on their first sign-in, the scopes asked for (openid must be one) and the sign-in page's button.
    # The issuer's host may be a private address (an admin chose it): outbound calls allow exactly that host.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_default_role: Literal["admin", "pm", "owner", "viewer"] = "viewer"
    oidc_scopes: str = "openid email profile"
    oidc_button_label: str = "Sign in with SSO"
    # Scale-out (core/tasks/): the Celery broker ("amqp://guest:guest@rabbit:5672//" or "redis://host:6379/0");
    # unset, everything after intake runs in `feedbackloop deliveries work` as one process. beat_sweep_s: how
    # often `feedbackloop beat` sweeps the database for work nobody kicked (a broker outage, a lost message);
    # beat_poll_s: tracker statuses, loop replies, polled channels, declines; beat_recluster_s: a full
    # re-clustering (unset: only when someone runs `feedbackloop cluster`). broker_visibility_timeout_s: Redis
    # only, how long an unacknowledged task waits before it is given to another worker.
    broker_url: str | None = None
    # Put before every queue's name, so that several installations (or test runs) can share one broker.
    broker_queue_prefix: str = ""
    beat_sweep_s: float = Field(default=15.0, gt=0)
    beat_poll_s: float = Field(default=60.0, gt=0)
    beat_recluster_s: float | None = Field(default=None, gt=0)
    broker_visibility_timeout_s: float = Field(default=3600.0, gt=0)
    # The outbox's first retry waits between half and all of this, doubling per failure (core/routing/outbox.py);
    # a worker that dies in the middle of a call is retried after the same wait.
    delivery_backoff_s: float = Field(default=30.0, gt=0)

    @field_validator("broker_url")
    @classmethod
    def _broker_url_known(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(BROKER_SCHEMES):
            raise ValueError(f"the broker URL starts with one of {', '.join(BROKER_SCHEMES)}")
        return value
    # Logs (core/logs.py) of the long-running processes (serve, the worker): "text" lines for a laptop, or "json",
    # one object per line (timestamp, level, logger, event and the ids involved) for a log collector. log_level is
    # feedbackloop's own loggers' level (other libraries log warnings and worse). trust_request_id_header: take the
    # X-Request-ID of a request when it is a plain token (letters, digits, . _ : -, at most 64), which is right only
    # behind a proxy that sets it on every request; otherwise every request gets an id of its own.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    trust_request_id_header: bool = False

    @field_validator("oidc_issuer")
    @classmethod
    def _oidc_issuer_is_url(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("the issuer is an http(s) URL such as https://accounts.example.com")
        return value

    @field_validator("oidc_scopes")
    @classmethod
    def _oidc_scopes_have_openid(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("the scopes must include openid")
        return value

    @field_validator("rate_limit_per_key", "rate_limit_per_channel", "rate_limit_failed_auth_per_address")
    @classmethod
    def _rate_limits_parse(cls, value: str) -> str:
        if value.strip():
            try:
                items = limits.parse_many(value)
            except ValueError as error:
                raise ValueError(f"not a rate limit such as '600/minute' ({error})") from None
            if any(item.amount < 1 for item in items):  # "0/minute" would refuse everything: say "" to switch off
                raise ValueError("a rate limit allows at least 1 request; use an empty value to switch it off")
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_limit_storage_known(cls, value: str) -> str:
        if value.split("://", 1)[0] not in RATE_LIMIT_STORAGE_SCHEMES or "://" not in value:
            raise ValueError(f"the storage must start with one of {', '.join(sorted(RATE_LIMIT_STORAGE_SCHEMES))} "
                             "followed by ://")
        return value


def embedding_cache_dir(settings: Settings) -> Path:
    if settings.embedding_cache_dir is not None:
        return settings.embedding_cache_dir
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "feedbackloop"


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
