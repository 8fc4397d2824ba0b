"""Logs of the long-running processes: plain text lines for a laptop, or one JSON object per line.

``FEEDBACKLOOP_LOG_FORMAT=json`` gives every line ``timestamp``, ``level``, ``logger`` and ``event`` (a stable
dotted name such as ``item.embedded``) and the ids involved as fields of their own (``request_id``, ``item_id``,
``theme_id``, ``delivery_id``...), passed with ``extra=``. Each HTTP request has a request id (``X-Request-ID``);
the items it creates keep it (``feedback_items.request_id``), so the worker names it again when an item is
embedded, joins a theme and reaches a ticket: one id to grep from webhook to ticket (docs/architecture.md,
"Logs").

What a sender controls never shapes a line: a request id from a header is taken only when a setting says a proxy
sets it and only when it is a plain token; every field is bounded in length and count, and in text lines control
characters are escaped, so neither a newline nor a megabyte of header makes a second line or a giant one.
Nothing here runs at import: the processes call ``configure_logging`` when they start.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.orm import Session

from core.after_commit import after_commit
from core.settings import Settings

# feedbackloop's own loggers take the configured level; other libraries (httpx logs every call at INFO) stay at
# WARNING.
OWN_LOGGERS = ("core", "api", "plugins", "clustering")
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
REQUEST_ID_SHAPE = re.compile(r"[A-Za-z0-9._:-]{1,64}")
MAX_FIELD_CHARS = 256
MAX_EVENT_CHARS = 2000
# Items named in one line: a worker round over a big backlog writes several lines, never one huge one.
MAX_ITEMS_PER_LINE = 50
PLAIN_TEXT = re.compile(r"[\w.:/{}@+,=-]+", re.ASCII)
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# Fields a formatter makes itself (the traceback), which are not bounded like the fields an event carries.
UNBOUNDED = frozenset({"exc_info", "exc_text", "stack_info"})
OURS = "_feedbackloop_handler"
# uvicorn adds "color_message" (its message with terminal colours) to its own lines.
_RESERVED = frozenset(RESERVED_ATTRS) | {"message", "asctime", "color_message"}


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_for(header: str | None, trusted: bool) -> str:
    """The request's id: the proxy's header when trusted and well-formed, else a new one."""
    if trusted and header is not None and REQUEST_ID_SHAPE.fullmatch(header):
        return header
    return new_request_id()


def bounded(value: Any, chars: int = MAX_FIELD_CHARS, depth: int = 0) -> Any:
    """A copy of ``value`` short enough for one log line: strings cut, lists and mappings capped, nesting flattened."""
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + f"...({len(value) - chars} more)"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):  # the line's timestamp: ISO 8601 with its "T"
        return value.isoformat()
    if depth >= 3:
        return bounded(repr(value), chars)
    if isinstance(value, Mapping):
        return {bounded(str(key), 64): bounded(item, chars, depth + 1)
                for key, item in list(value.items())[:MAX_ITEMS_PER_LINE]}
    if isinstance(value, list | tuple | set | frozenset):
        return [bounded(item, chars, depth + 1) for item in list(value)[:MAX_ITEMS_PER_LINE]]
    return bounded(str(value), chars)


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the call passed with ``extra=``, in the order given."""
    return {key: value for key, value in record.__dict__.items() if key not in _RESERVED and not key.startswith("_")}


class BoundedJsonFormatter(JsonFormatter):
    """python-json-logger's formatter with the field names of docs/architecture.md and every field bounded."""

    def __init__(self) -> None:
        super().__init__("{levelname}{name}{message}", style="{", timestamp=True, reserved_attrs=sorted(_RESERVED),
                         rename_fields={"levelname": "level", "name": "logger", "message": "event"})

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value if key in UNBOUNDED else bounded(value, MAX_EVENT_CHARS if key == "event" else
                                                            MAX_FIELD_CHARS)
                for key, value in log_data.items()}


def _text_value(value: Any) -> str:
    """A plain token as it is, anything else as JSON (ASCII, control characters escaped): one line either way."""
    if isinstance(value, str) and PLAIN_TEXT.fullmatch(value):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time level logger event key=value ...`` on one line (a traceback, when there is one, follows it)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's naming)
        record.message = CONTROL_CHARS.sub(" ", bounded(record.message, MAX_EVENT_CHARS))
        line = super().formatMessage(record)
        fields = " ".join(f"{key}={_text_value(bounded(value))}" for key, value in event_fields(record).items())
        return f"{line} {fields}" if fields else line


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written (a command run inside another program, such as
    a test's CLI runner, may swap it and close the one it lent)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """One handler on the root logger in the configured format (replacing one made here before); returns it.

    With JSON, the server's own loggers (uvicorn's errors and access lines) go through it too, so that every
    line of the process is JSON.
    """
    root = logging.getLogger()
    for earlier in [earlier for earlier in root.handlers if getattr(earlier, OURS, False)]:
        root.removeHandler(earlier)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else StderrHandler()
    setattr(handler, OURS, True)
    handler.setFormatter(BoundedJsonFormatter() if settings.log_format == "json" else TextFormatter())
    root.addHandler(handler)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(settings.log_level)
    if settings.log_format == "json":
        for name in SERVER_LOGGERS:
            server_logger = logging.getLogger(name)
            server_logger.handlers.clear()
            server_logger.propagate = True
    return handler


def log_items(logger: logging.Logger, event: str, refs: Sequence[Mapping[str, Any]], **fields: Any) -> None:
    """``event`` naming every item of ``refs`` (``{"item_id": ..., "request_id": ..., ...}``), in lines of at most
    ``MAX_ITEMS_PER_LINE`` items each, with ``fields`` and the total on every line."""
    if not refs or not logger.isEnabledFor(logging.INFO):
        return
    for start in range(0, len(refs), MAX_ITEMS_PER_LINE):
        logger.info(event, extra={**fields, "items_total": len(refs),
                                  "items": [dict(ref) for ref in refs[start:start + MAX_ITEMS_PER_LINE]]})


def log_items_after_commit(session: Session, logger: logging.Logger, event_name: str,
                           refs: Sequence[Mapping[str, Any]], **fields: Any) -> None:
    """``log_items`` once the session's transaction commits, and not at all if it rolls back: a line says
    "embedded" or "joined a theme" only about what is stored."""
    if not refs or not logger.isEnabledFor(logging.INFO):
        return
    kept = list(refs)
    after_commit(session, lambda: log_items(logger, event_name, kept, **fields))
