"""SQL for the community metadata conventions of items ("thread", "opens_thread", "staff"), per dialect.

Channel plugins fill these keys where their source says so (docs/plugins.md). Metadata is JSON any API
client may send, so a value counts only when it has the expected JSON type: ``true`` (not the string
"true") for a flag, a string for a thread. SQLite reads JSON with ``json_type``/``json_extract``,
PostgreSQL (a ``json`` column) with ``json_extract_path``: neither casts a value, so odd metadata can
never make a query fail.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, Text, case, cast, func, literal, or_
from sqlalchemy.orm import Session

from core.models import FeedbackItem


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def metadata_flag(session: Session, key: str, column: Any = None) -> ColumnElement[int]:
    """1 where the item's metadata ``key`` is JSON ``true``, else 0 (absent, false, or another type)."""
    metadata = FeedbackItem.metadata_json if column is None else column
    if _is_sqlite(session):
        holds: ColumnElement[bool] = func.json_type(metadata, literal(f'$."{key}"')) == "true"
    else:
        holds = cast(func.json_extract_path(metadata, literal(key)), Text) == "true"
    return case((holds, 1), else_=0)


def metadata_text(session: Session, key: str, column: Any = None) -> ColumnElement[str | None]:
    """The item's metadata ``key`` where it is a JSON string, else NULL."""
    metadata = FeedbackItem.metadata_json if column is None else column
    if _is_sqlite(session):
        return case((func.json_type(metadata, literal(f'$."{key}"')) == "text",
                     cast(func.json_extract(metadata, literal(f'$."{key}"')), String)), else_=None)
    value = func.json_extract_path(metadata, literal(key))
    return case((func.json_typeof(value) == "string", func.json_extract_path_text(metadata, literal(key))),
                else_=None)


def metadata_present(session: Session, key: str, column: Any = None) -> ColumnElement[bool]:
    """Whether the item's metadata has ``key`` with a JSON boolean: the source says, one way or the other."""
    metadata = FeedbackItem.metadata_json if column is None else column
    if _is_sqlite(session):
        return func.json_type(metadata, literal(f'$."{key}"')).in_(("true", "false"))
    return func.json_typeof(func.json_extract_path(metadata, literal(key))) == "boolean"


def not_a_staff_answer(session: Session) -> ColumnElement[bool]:
    """What themes are made of: every item but staff answering in a thread (a support agent's reply, a
    moderator's comment), which is kept for the community figures. A thread staff open (an issue a team
    member files for a customer) is feedback like any other; internal channels' items are "internal",
    not "staff", and themed too."""
    return or_(metadata_flag(session, "staff") == 0, metadata_flag(session, "opens_thread") == 1)
