"""Sign-in with a local password, sign-out, and the pages' error handling.

The sign-in form is protected against cross-site posts by a double-submit token: a random value in a
short-lived cookie and the same value in the form (there is no session yet whose token could be used).
Failed sign-ins spend the ``rate_limit_failed_auth_per_address`` budget of the address and of the account,
so neither guessing many passwords for one account nor one password for many accounts is fast.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.pages.common import (
    SESSION_COOKIE,
    CheckedForm,
    MaybeUser,
    PageUser,
    cookie_secure,
    render,
    safe_next,
    see_other,
)
from api.rate_limits import RateLimits
from core.audit import record, user_actor
from core.auth.users import check_password, mark_signed_in
from core.auth.web_sessions import revoke_session, start_session
from core.models import User
from core.settings import Settings

router = APIRouter(include_in_schema=False)
SIGN_IN_COOKIE = "feedbackloop_signin"
SIGN_IN_FORM_LIFETIME_S = 30 * 60
MAX_FIELD_CHARS = 2048


def sign_in_limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.sign_in_limits
    return limits


def open_session(request: Request, response: Response, session: Session, user: User) -> None:
    """Start a web session for ``user`` and set its cookie on ``response`` (password and OIDC sign-in)."""
    settings: Settings = request.app.state.loop.settings
    token = start_session(session, user, request.headers.get("user-agent", ""),
                          lifetime=timedelta(hours=settings.session_max_hours))
    mark_signed_in(user)
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.session_max_hours * 3600, httponly=True,
                        samesite="lax", secure=cookie_secure(settings, request), path="/")


def sign_in_page(request: Request, error: str | None = None, status_code: int = 200, email: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    settings: Settings = request.app.state.loop.settings
    response = render(request, "signin.html", None, {
        "form_token": token, "error": error, "email": email, "next": safe_next(request.query_params.get("next")),
        "oidc_label": settings.oidc_button_label if settings.oidc_issuer and settings.oidc_client_id
        else None}, status_code=status_code)
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=SIGN_IN_FORM_LIFETIME_S, httponly=True, samesite="strict",
                        secure=cookie_secure(settings, request), path="/signin")
    return response


@router.get("/signin", response_class=HTMLResponse)
def get_sign_in(request: Request, current: MaybeUser) -> Response:
    if current is not None:
        return see_other(safe_next(request.query_params.get("next")))
    return sign_in_page(request)


@router.post("/signin", response_class=HTMLResponse)
async def post_sign_in(request: Request, session: SessionDep) -> Response:
    form = await request.form()
    email, password = form.get("email"), form.get("password")
    form_token, cookie_token = form.get("form_token"), request.cookies.get(SIGN_IN_COOKIE)
    if not (isinstance(form_token, str) and cookie_token
            and hmac.compare_digest(form_token.encode(), cookie_token.encode())):
        return sign_in_page(request, "This sign-in form expired or came from another site; try again.", 403)
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password \
            or len(email) > MAX_FIELD_CHARS or len(password) > MAX_FIELD_CHARS:
        return sign_in_page(request, "Enter your e-mail address and password.", 400)
    limits = sign_in_limits(request)
    address = request.client.host if request.client else "unknown"
    for identity in (("signin-address", address), ("signin-account", email.strip().lower())):
        refusal = await limits.check(limits.failed_auth, *identity)
        if refusal is not None:
            return sign_in_page(request, f"Too many failed sign-ins; try again in {refusal.retry_after_s} s.",
                                429, email)
    user = await run_in_threadpool(check_password, session, email, password)
    if user is None:
        for identity in (("signin-address", address), ("signin-account", email.strip().lower())):
            await limits.spend(limits.failed_auth, *identity)
        return sign_in_page(request, "That e-mail address and password do not match an account.", 401, email)
    target = safe_next(form.get("next") if isinstance(form.get("next"), str) else None)  # type: ignore[arg-type]
    response = see_other(target)
    open_session(request, response, session, user)
    record(session, user_actor(user.email), "sign_in", "user", user.email, {"method": "password"})
    response.delete_cookie(SIGN_IN_COOKIE, path="/signin")
    return response


@router.post("/signout")
def post_sign_out(request: Request, current: PageUser, session: SessionDep, _form: CheckedForm) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        revoke_session(session, cookie)
    record(session, current.actor, "sign_out", "user", current.user.email, {})
    response = see_other("/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
