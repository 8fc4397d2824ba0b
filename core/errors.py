"""One error model: every error a person can cause or fix derives from ``FeedbackloopError``.

An error carries the HTTP status the API answers with and a message written for the person who has to
act on it. The API turns it into one JSON shape in one handler (``api/errors.py``):

    {"error": "<code>", "detail": "<message>"}

where ``code`` is the error's kind in snake case (``not_found``, ``invalid_item``, ``rules_error``...).
The command line prints the message and exits with code 2 (``core/cli/app.py``). Anything else that
escapes is a bug: a 500 with a log entry, never a message made up on the spot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class FeedbackloopError(Exception):
    """The base of every domain error: a user-facing message and the HTTP status that fits it."""

    status_code: int = 400

    def __init__(self, message: str, status_code: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.headers = dict(headers or {})

    @property
    def code(self) -> str:
        """The error's kind for machines: the class name in snake case (``NotFound`` -> ``not_found``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()


class NotFound(FeedbackloopError):
    """Something named by id or name does not exist."""

    status_code = 404


class Conflict(FeedbackloopError):
    """The request is fine, but the state it meets does not allow it (already exists, wrong state)."""

    status_code = 409


class InvalidInput(FeedbackloopError):
    """Input that is well-formed but cannot be used; the message says which part and why."""

    status_code = 422


class Unauthorized(FeedbackloopError):
    """No credentials, or wrong ones."""

    status_code = 401


class Forbidden(FeedbackloopError):
    """Valid credentials without the right to do this."""

    status_code = 403


class ConfigurationError(FeedbackloopError):
    """A setting or a plugin choice that cannot work; the operator has to fix it, the caller may retry."""

    status_code = 503


class StorageUnavailable(FeedbackloopError):
    """The database cannot answer or refused to keep a write (commit failed): nothing was stored, retry.

    Answered with ``Retry-After``: a webhook sender (or a client) waits that long and sends again, which is
    what makes a database restart cost no delivery."""

    status_code = 503
    retry_after_s = 5

    def __init__(self, message: str, status_code: int | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, status_code, {"Retry-After": str(self.retry_after_s), **(headers or {})})
