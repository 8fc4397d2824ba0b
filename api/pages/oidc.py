"""Sign-in with an OpenID Connect provider: the authorization-code flow with PKCE (S256), server-side state.

``/auth/oidc/start`` keeps a ``PendingSignIn`` (the SHA-256 of a random state, a nonce and the PKCE
verifier; ten minutes, used once) and sends the browser to the provider; the same state also goes into a
short-lived cookie, so a callback is accepted only in the browser that started it (a link with someone
else's code cannot sign a person in as them). ``/auth/oidc/callback`` consumes the pending sign-in,
exchanges the code, checks the ID token (signature against the provider's JWKS, ``iss``, ``aud``, ``exp``,
``iat``, ``nonce``, ``azp``, ``at_hash``: Authlib's ``CodeIDToken``, signatures by joserfc), finds or makes the
user (``core.auth.users.oidc_user``, first sign-in with ``oidc_default_role``) and opens a web session
exactly as a password sign-in does. A refusal is a 400 page that says what was wrong.

Every call to the provider goes through ``core.outbound``: the configured issuer's host is an admin's
choice, so it may be a private or loopback address (exactly that host, no other); the other hosts the
discovery document names (token, JWKS and userinfo endpoints) follow the outbound policy as configured.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from fastapi import APIRouter, Request
from fastapi.responses import Response
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete
from sqlalchemy.orm import Session

from api.deps import SessionDep
from api.pages.auth import open_session
from api.pages.common import cookie_secure, safe_next, see_other
from api.pages.errors import page_error
from core.audit import record, user_actor
from core.auth.users import oidc_user
from core.clock import aware, utcnow
from core.errors import Conflict, InvalidInput
from core.models import PendingSignIn
from core.outbound import http_client
from core.settings import Settings

router = APIRouter(include_in_schema=False)
STATE_COOKIE = "feedbackloop_oidc_state"
CALLBACK_PATH = "/auth/oidc/callback"
PENDING_LIFETIME = timedelta(minutes=10)
METADATA_LIFETIME_S = 600.0
CLOCK_LEEWAY_S = 60
HTTP_TIMEOUT_S = 10.0
OUTBOUND_WHAT = "OpenID Connect provider"
START_AGAIN = "Start again from the sign-in page."


class SignInRefused(Exception):
    """The callback cannot sign anyone in; the message is shown to the person (status 400 unless said)."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class ProviderCache:
    """The provider's discovery document and JWKS, kept a few minutes per app (fetched again on unknown keys)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    issuer: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    key_set: KeySet | None = None
    fetched_at: float = 0.0


def provider_cache(request: Request) -> ProviderCache:
    cache: ProviderCache | None = getattr(request.app.state, "oidc_provider_cache", None)
    if cache is None:
        cache = request.app.state.oidc_provider_cache = ProviderCache()
    return cache


def issuer_settings(settings: Settings) -> Settings:
    """The outbound settings for calls to the provider: the issuer's host allowed, even when private."""
    assert settings.oidc_issuer is not None
    host = httpx.URL(settings.oidc_issuer).host
    allowed = f"{settings.outbound_allowed},{host}" if settings.outbound_allowed.strip() else ""
    private = ",".join(part for part in (settings.outbound_allow_private, host) if part.strip())
    return settings.model_copy(update={"outbound_allowed": allowed, "outbound_allow_private": private})


def provider_client(settings: Settings) -> httpx.Client:
    return http_client(issuer_settings(settings), OUTBOUND_WHAT, timeout=HTTP_TIMEOUT_S,
                       headers={"Accept": "application/json"})


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise SignInRefused(f"The identity provider answered {response.status_code} to the {what} request.", 502)
    try:
        document = response.json()
    except ValueError as error:
        raise SignInRefused(f"The identity provider's {what} answer is not JSON.", 502) from error
    if not isinstance(document, dict):
        raise SignInRefused(f"The identity provider's {what} answer is not a JSON object.", 502)
    return document


def load_metadata(settings: Settings, cache: ProviderCache, refresh_keys: bool = False) -> ProviderCache:
    """The cache, filled: discovery (whose ``issuer`` must be the configured one, exactly) and the JWKS."""
    issuer = settings.oidc_issuer
    assert issuer is not None
    with cache.lock:
        stale = cache.issuer != issuer or time.monotonic() - cache.fetched_at > METADATA_LIFETIME_S
        if not stale and not refresh_keys and cache.key_set is not None:
            return cache
        try:
            with provider_client(settings) as client:
                metadata = cache.metadata if not stale else _json(
                    client.get(issuer.rstrip("/") + "/.well-known/openid-configuration"), "discovery")
                if metadata.get("issuer") != issuer:
                    raise SignInRefused(f"The identity provider calls itself {metadata.get('issuer')!r}, not the "
                                        f"configured issuer {issuer!r}; check FEEDBACKLOOP_OIDC_ISSUER.", 502)
                for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(metadata.get(endpoint), str):
                        raise SignInRefused(f"The identity provider's discovery document has no {endpoint}.", 502)
                key_set = KeySet.import_key_set(_json(client.get(metadata["jwks_uri"]), "JWKS"))  # type: ignore[arg-type]
        except (httpx.HTTPError, InvalidInput) as error:
            raise SignInRefused(f"The identity provider cannot be reached ({error}).", 502) from error
        except (JoseError, ValueError, TypeError) as error:
            raise SignInRefused(f"The identity provider's keys (JWKS) cannot be read ({error}).", 502) from error
        if stale:
            cache.issuer, cache.metadata, cache.fetched_at = issuer, metadata, time.monotonic()
        cache.key_set = key_set
        return cache


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def redirect_uri(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def configured(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


@router.get("/auth/oidc/start")
def start_sign_in(request: Request, session: SessionDep) -> Response:
    settings: Settings = request.app.state.loop.settings
    if not configured(settings):
        return page_error(request, 404, "Single sign-on is not configured on this server.")
    assert settings.oidc_client_id is not None
    try:
        metadata = load_metadata(settings, provider_cache(request)).metadata
    except SignInRefused as refusal:
        return page_error(request, refusal.status_code, str(refusal))
    # Sign-ins abandoned at the provider are dropped here rather than by a background job.
    session.execute(delete(PendingSignIn).where(PendingSignIn.created_at < utcnow() - PENDING_LIFETIME))
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), generate_token(64)
    session.add(PendingSignIn(state_hash=state_hash(state), nonce=nonce, code_verifier=verifier,
                              return_to=safe_next(request.query_params.get("next")), created_at=utcnow()))
    location = prepare_grant_uri(metadata["authorization_endpoint"], settings.oidc_client_id, "code",
                                 redirect_uri=redirect_uri(settings), scope=settings.oidc_scopes, state=state,
                                 nonce=nonce, code_challenge=create_s256_code_challenge(verifier),
                                 code_challenge_method="S256")
    response = see_other(location)
    response.set_cookie(STATE_COOKIE, state, max_age=int(PENDING_LIFETIME.total_seconds()), httponly=True,
                        samesite="lax", secure=cookie_secure(settings, request), path="/auth/oidc")
    return response


@dataclass(frozen=True)
class Pending:
    nonce: str
    code_verifier: str
    return_to: str


def take_pending(session: Session, state: str | None, cookie_state: str | None) -> Pending:
    """The pending sign-in of this callback, deleted and committed at once (a callback works once, and no
    database lock is held while the provider is called), or a refusal."""
    if not state:
        raise SignInRefused(f"The identity provider sent no state back: this sign-in cannot be trusted. {START_AGAIN}")
    if not cookie_state or not hmac.compare_digest(state.encode(), cookie_state.encode()):
        raise SignInRefused("This sign-in's state does not match the one this browser started (wrong or missing "
                            f"state). {START_AGAIN}")
    found = session.get(PendingSignIn, state_hash(state))
    pending = Pending(found.nonce, found.code_verifier, found.return_to) if found is not None else None
    created = aware(found.created_at) if found is not None else None
    # Two callbacks racing with one state: only the one whose DELETE removed the row goes on.
    removed = session.execute(delete(PendingSignIn).where(PendingSignIn.state_hash == state_hash(state)))
    session.commit()
    if pending is None or getattr(removed, "rowcount", 0) != 1:
        raise SignInRefused(f"This sign-in was already used or has expired. {START_AGAIN}")
    if created is None or utcnow() - created > PENDING_LIFETIME:
        raise SignInRefused(f"This sign-in took longer than ten minutes and has expired. {START_AGAIN}")
    return pending


def exchange_code(settings: Settings, cache: ProviderCache, code: str, verifier: str) -> dict[str, Any]:
    """The token response for ``code``; the client authenticates with HTTP Basic unless the provider
    offers only ``client_secret_post``."""
    assert settings.oidc_client_id is not None
    secret = settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(settings),
            "code_verifier": verifier}
    methods = cache.metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    options: dict[str, Any] = {}
    if "client_secret_basic" in methods:
        # RFC 6749 2.3.1: the id and secret are URL-encoded before they go into the Basic header.
        options["auth"] = httpx.BasicAuth(quote(settings.oidc_client_id, safe=""), quote(secret, safe=""))
    else:
        form.update(client_id=settings.oidc_client_id, client_secret=secret)
    try:
        with provider_client(settings) as client:
            response = client.post(cache.metadata["token_endpoint"], data=form, **options)
    except (httpx.HTTPError, InvalidInput) as error:
        raise SignInRefused(f"The identity provider cannot be reached ({error}).", 502) from error
    if response.status_code != 200:
        try:
            problem = response.json()
            detail = f"{problem.get('error')}: {problem.get('error_description', '')}"
        except ValueError:
            detail = f"status {response.status_code}"
        raise SignInRefused(f"The identity provider refused to exchange the code ({detail}). {START_AGAIN}")
    return _json(response, "token")


def verified_claims(settings: Settings, cache: ProviderCache, token: dict[str, Any], nonce: str) -> CodeIDToken:
    """The ID token's claims once its signature, issuer, audience, times, nonce and at_hash check out."""
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SignInRefused("The identity provider sent no ID token; is the openid scope allowed for this client?")
    algorithms = [alg for alg in cache.metadata.get("id_token_signing_alg_values_supported", ["RS256"])
                  if alg != "none" and not alg.startswith("HS")] or ["RS256"]
    assert cache.key_set is not None
    try:
        try:
            decoded = jwt.decode(id_token, cache.key_set, algorithms=algorithms)
        except InvalidKeyIdError:  # the provider rotated its keys since they were fetched
            cache = load_metadata(settings, cache, refresh_keys=True)
            assert cache.key_set is not None
            decoded = jwt.decode(id_token, cache.key_set, algorithms=algorithms)
        claims = CodeIDToken(decoded.claims, decoded.header,
                             {"iss": {"essential": True, "value": settings.oidc_issuer},
                              "aud": {"essential": True, "value": settings.oidc_client_id},
                              "exp": {"essential": True}, "iat": {"essential": True}},
                             {"nonce": nonce, "client_id": settings.oidc_client_id,
                              "access_token": token.get("access_token")})
        claims.validate(leeway=CLOCK_LEEWAY_S)
    except JoseError as error:
        raise SignInRefused(f"The identity provider's ID token did not check out ({error}). {START_AGAIN}") from error
    except ValueError as error:
        raise SignInRefused(f"The identity provider's ID token cannot be read ({error}). {START_AGAIN}") from error
    return claims


def identity_details(settings: Settings, cache: ProviderCache, claims: CodeIDToken,
                     token: dict[str, Any]) -> tuple[str | None, str | None]:
    """E-mail and name: from the ID token, else from the userinfo endpoint (for the same subject)."""
    email, name = claims.get("email"), claims.get("name")
    verified = claims.get("email_verified")
    userinfo_endpoint = cache.metadata.get("userinfo_endpoint")
    if not email and isinstance(userinfo_endpoint, str) and isinstance(token.get("access_token"), str):
        try:
            with provider_client(settings) as client:
                info = _json(client.get(userinfo_endpoint,
                                        headers={"Authorization": f"Bearer {token['access_token']}"}), "userinfo")
        except (httpx.HTTPError, InvalidInput) as error:
            raise SignInRefused(f"The identity provider cannot be reached ({error}).", 502) from error
        if info.get("sub") != claims["sub"]:
            raise SignInRefused("The identity provider's userinfo is about another subject than its ID token.")
        email, name, verified = info.get("email"), name or info.get("name"), info.get("email_verified")
    if verified is False:
        # An unverified address must not link to the local account that has it.
        raise SignInRefused("The identity provider has not verified this e-mail address, so it cannot sign in here.")
    return (email if isinstance(email, str) else None), (name if isinstance(name, str) else None)


@router.get(CALLBACK_PATH)
def finish_sign_in(request: Request, session: SessionDep) -> Response:
    settings: Settings = request.app.state.loop.settings
    if not configured(settings):
        return page_error(request, 404, "Single sign-on is not configured on this server.")
    assert settings.oidc_issuer is not None
    query = request.query_params
    try:
        pending = take_pending(session, query.get("state"), request.cookies.get(STATE_COOKIE))
        if query.get("error"):
            raise SignInRefused(f"The identity provider did not sign you in ({query.get('error')}: "
                                f"{query.get('error_description', '')}). {START_AGAIN}")
        # RFC 9207: a provider that names itself in the answer must be the one the request went to.
        if query.get("iss") is not None and query.get("iss") != settings.oidc_issuer:
            raise SignInRefused(f"This answer comes from another identity provider ({query.get('iss')}). {START_AGAIN}")
        code = query.get("code")
        if not code:
            raise SignInRefused(f"The identity provider sent no authorization code. {START_AGAIN}")
        cache = load_metadata(settings, provider_cache(request))
        token = exchange_code(settings, cache, code, pending.code_verifier)
        claims = verified_claims(settings, cache, token, pending.nonce)
        email, name = identity_details(settings, cache, claims, token)
        try:
            user = oidc_user(session, settings.oidc_issuer, str(claims["sub"]), email, name,
                             settings.oidc_default_role)
        except (InvalidInput, Conflict) as error:
            raise SignInRefused(str(error), error.status_code) from error
        if not user.active:
            raise SignInRefused("This account is deactivated; ask an admin.", 403)
    except SignInRefused as refusal:
        # The pending sign-in stays deleted (the session commits): a refused callback cannot be retried.
        response = page_error(request, refusal.status_code, str(refusal))
        response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
        return response
    response = see_other(pending.return_to)
    open_session(request, response, session, user)
    record(session, user_actor(user.email), "sign_in", "user", user.email, {"method": "oidc"})
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    return response
