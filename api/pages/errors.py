"""Errors on workspace pages: an HTML page with the message (the API keeps its JSON), and the redirect to
sign-in when there is no session."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import Request
from fastapi.responses import Response

from api.pages.common import SignInRequired, render, see_other


def page_error(request: Request, status_code: int, message: str) -> Response:
    if status_code == SignInRequired.status_code:
        return see_other(message)
    title = HTTPStatus(status_code).phrase if status_code in HTTPStatus._value2member_map_ else "Error"
    return render(request, "error.html", None, {"status": status_code, "title": title, "message": message},
                  status_code=status_code)
