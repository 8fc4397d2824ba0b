"""Keyed pseudonyms: every id or hash derived from what a person wrote, or from who they are, is an HMAC.

An unkeyed hash of an author's name and words can be recomputed by anyone who guesses them, so author
pseudonyms, the ids given to items that arrive without one, and the near-duplicate hash all take this
installation's secret key. The key never lives in the database: it comes from
``FEEDBACKLOOP_PSEUDONYM_KEY`` or from a key file (``pseudonym_key_file``, by default
``<secrets_dir>/pseudonym_key``), made on first start with owner-only permissions. The database keeps
only a check value (an HMAC of a fixed label, which says nothing about the key), so that a machine
with a different key fails at start instead of silently making pseudonyms that match nothing: several
machines on one PostgreSQL database must be given the same key file or variable.

Versions before this one kept the key in ``installation_settings``; on the first start of this version
that key is written to the key file, the ids and hashes made without a key are remade with it, and the
row is deleted, so existing author pseudonyms stay as they were.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.db import session_scope
from core.errors import ConfigurationError
from core.models import FeedbackItem, ItemSighting, Setting
from core.settings import Settings

LEGACY_KEY_ROW = "pseudonym_key"
CHECK_ROW = "pseudonym_key_check"
KEY_FILE_NAME = "pseudonym_key"
KEY_BYTES = 32
# Ids made without a key by earlier versions; this version's ids start with CONTENT_ID_PREFIX.
LEGACY_ID_PREFIX = "sha1:"
CONTENT_ID_PREFIX = "cid:"

log = logging.getLogger(__name__)


class PseudonymKeyError(ConfigurationError):
    """The pseudonym key is missing, malformed, or not the one this database's pseudonyms were made with."""


def normalised(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass(frozen=True)
class Pseudonyms:
    """This installation's keyed pseudonyms; each kind of value has its own label, so none stands in for another."""

    key: bytes

    def _mac(self, label: bytes, value: str) -> str:
        return hmac.new(self.key, label + value.encode(), hashlib.sha256).hexdigest()

    def author(self, author: str | None) -> str | None:
        """The author's pseudonym (unlabelled: the formula of earlier versions, so stored pseudonyms still match)."""
        if author is None or not author.strip():
            return None
        return self._mac(b"", author.strip().lower())[:32]

    def content_id(self, author_pseudonym: str | None, text: str) -> str:
        """An id for an item that arrives without one: the same author posting the same text is one item."""
        return CONTENT_ID_PREFIX + self._mac(b"content-id\0", f"{author_pseudonym or ''}\n{normalised(text)}")[:40]

    def content_hash(self, author_pseudonym: str | None, text: str) -> str | None:
        """Key of near-duplicates: only with a known author (two people saying the same thing are two voices)."""
        if author_pseudonym is None:
            return None
        return self._mac(b"content-hash\0", f"{author_pseudonym}\n{normalised(text)}")

    def check_value(self) -> str:
        return self._mac(b"key-check\0", "feedbackloop")


def key_file(settings: Settings) -> Path:
    """Where the key file is: the configured file, else ``pseudonym_key`` in the secrets folder, which is
    ``.feedbackloop/`` next to a SQLite database file, or in the working directory for any other database."""
    if settings.pseudonym_key_file is not None:
        return settings.pseudonym_key_file
    if settings.secrets_dir is not None:
        return settings.secrets_dir / KEY_FILE_NAME
    url = make_url(settings.database_url)
    database = url.database if url.get_backend_name() == "sqlite" else None
    base = Path(database).parent if database and database != ":memory:" else Path(".")
    return base / ".feedbackloop" / KEY_FILE_NAME


def _parse_key(value: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise PseudonymKeyError(f"the pseudonym key in {where} must be at least {KEY_BYTES * 2} hexadecimal characters "
                                "(make one with: python -c 'import secrets; print(secrets.token_hex(32))')")
    return key


def _read_key_file(path: Path) -> bytes | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise PseudonymKeyError(f"cannot read the pseudonym key file {path}: {error.strerror}") from error
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("the pseudonym key file %s can be read by other users; chmod 600 it", path)
    return _parse_key(text, str(path))


def write_key_file(path: Path, key: bytes) -> bytes:
    """Write ``key`` to ``path`` atomically with mode 0600 (folder 0700) unless a key is there already;
    returns the key the file holds afterwards (another process may have written its own first)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL and the mode at open: the file is never readable by others, not even for a moment.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(key.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # the file exists: the first writer's key stands
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    existing = _read_key_file(path)
    assert existing is not None  # just written or already there
    return existing


def _rewrite_legacy_values(session: Session, pseudonyms: Pseudonyms) -> None:
    """Remake with the key the ids and hashes that earlier versions made without one (once, on upgrade)."""
    item_rows = session.execute(select(FeedbackItem.id, FeedbackItem.external_id, FeedbackItem.author_pseudonym,
                                       FeedbackItem.text_original)).all()
    # ORM bulk UPDATE by primary key: one executemany per table.
    item_updates = [{"id": row.id,
                     "external_id": (pseudonyms.content_id(row.author_pseudonym, row.text_original)
                                     if row.external_id.startswith(LEGACY_ID_PREFIX) else row.external_id),
                     "content_hash": pseudonyms.content_hash(row.author_pseudonym, row.text_original)}
                    for row in item_rows]
    if item_updates:
        session.execute(update(FeedbackItem), item_updates)
    texts = {row.id: row.text_original for row in item_rows}
    sighting_updates = [{"id": row.id, "external_id": pseudonyms.content_id(row.author_pseudonym,
                                                                            texts.get(row.item_id, ""))}
                        for row in session.execute(select(ItemSighting.id, ItemSighting.item_id,
                                                          ItemSighting.author_pseudonym)
                                                   .where(ItemSighting.external_id.startswith(LEGACY_ID_PREFIX)))]
    if sighting_updates:
        session.execute(update(ItemSighting), sighting_updates)


def _configured_or_file_key(settings: Settings, path: Path) -> bytes | None:
    if settings.pseudonym_key is not None:
        return _parse_key(settings.pseudonym_key.get_secret_value(), "FEEDBACKLOOP_PSEUDONYM_KEY")
    return _read_key_file(path)


def _settle(session: Session, settings: Settings) -> Pseudonyms:
    path = key_file(settings)
    key = _configured_or_file_key(settings, path)
    legacy = session.get(Setting, LEGACY_KEY_ROW)
    check = session.get(Setting, CHECK_ROW)
    if key is None and legacy is not None:
        key = write_key_file(path, _parse_key(legacy.value, "the database"))
    if key is None:
        if check is not None or session.scalar(select(FeedbackItem.id).limit(1)) is not None:
            raise PseudonymKeyError(f"no pseudonym key at {path} (nor FEEDBACKLOOP_PSEUDONYM_KEY), but this database "
                                    "holds pseudonyms made with one: copy the key file from a machine that has it")
        if not settings.pseudonym_key_create:
            raise PseudonymKeyError(f"no pseudonym key at {path} (nor FEEDBACKLOOP_PSEUDONYM_KEY), and "
                                    "FEEDBACKLOOP_PSEUDONYM_KEY_CREATE is false")
        key = write_key_file(path, secrets.token_bytes(KEY_BYTES))
        log.info("created the pseudonym key file %s; back it up, and give it to every machine of this database", path)
    pseudonyms = Pseudonyms(key)
    if legacy is not None:
        if _parse_key(legacy.value, "the database") != key:
            raise PseudonymKeyError("the pseudonym key configured here is not the one this database's pseudonyms were "
                                    f"made with (kept in its installation_settings until now); remove {path} or "
                                    "FEEDBACKLOOP_PSEUDONYM_KEY and start again to move the database's key there")
        _rewrite_legacy_values(session, pseudonyms)
        session.delete(legacy)
    if check is None:
        session.add(Setting(key=CHECK_ROW, value=pseudonyms.check_value()))
    elif not hmac.compare_digest(check.value, pseudonyms.check_value()):
        raise PseudonymKeyError(f"the pseudonym key here ({path} or FEEDBACKLOOP_PSEUDONYM_KEY) is not the one this "
                                "database's pseudonyms were made with: every machine of a database needs the same key")
    return pseudonyms


def load_pseudonyms(settings: Settings, sessions: sessionmaker[Session]) -> Pseudonyms:
    """This installation's pseudonyms, the key found, made or moved out of the database, and checked against it."""
    try:
        with session_scope(sessions) as session:
            return _settle(session, settings)
    except IntegrityError:
        # Another machine or process stored its check value first: compare against that one.
        with session_scope(sessions) as session:
            return _settle(session, settings)
