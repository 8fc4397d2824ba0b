"""The browser harness itself: Chromium opens pages, screenshots land, axe-core can pass and fail a page, and
the OpenID Connect provider completes an authorization-code flow with PKCE whose ID token verifies."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidClaimError
from joserfc.jwk import KeySet
from playwright.sync_api import Page

from tests.support.browser import PageFactory, assert_accessible, axe_violations, screenshot, serve_html
from tests.support.oidc_provider import running_oidc_provider

# As strict as the app's own policy: no script may run but the server's own (here: none at all).
STRICT_CSP = {"Content-Security-Policy": "default-src 'self'; script-src 'none'; style-src 'self'"}

ACCESSIBLE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Harness check</title></head>
<body><main><h1>Feedback themes</h1>
<p>Three themes need a decision.</p>
<form><label for="q">Search themes</label> <input id="q" name="q" type="search">
<button type="submit">Search</button></form>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A one-pixel chart"></main></body></html>"""

# Each of these is a serious or critical axe rule: an unlabelled input, an image without alt text,
# a button with no name.
BROKEN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Broken</title></head>
<body><main><h1>Broken</h1><input type="text" name="q">
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><button></button></main></body></html>"""


def test_chromium_screenshots_and_axe_passes_an_accessible_page(page_for: PageFactory) -> None:
    with serve_html({"/": ACCESSIBLE}, STRICT_CSP) as base_url, page_for(base_url) as page:
        response = page.goto("/")
        assert response is not None and response.ok
        assert "script-src 'none'" in response.headers["content-security-policy"]
        assert page.get_by_role("heading", name="Feedback themes").is_visible()
        shot = screenshot(page, "harness-accessible")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 1000
        assert_accessible(page)
        # axe ran under the strict policy: it is loaded once per document and reused.
        assert page.evaluate("typeof window.axe.run") == "function"


def test_axe_finds_the_violations_of_a_broken_page(page_for: PageFactory) -> None:
    with serve_html({"/": BROKEN}, STRICT_CSP) as base_url, page_for(base_url) as page:
        page.goto("/")
        screenshot(page, "harness-broken")
        found = {violation["id"] for violation in axe_violations(page)}
        assert {"label", "image-alt", "button-name"} <= found
        with pytest.raises(AssertionError) as failure:
            assert_accessible(page)
    message = str(failure.value)
    assert "image-alt (critical)" in message and "button-name" in message and "at img" in message


def _sign_in_at_provider(page: Page, login: str) -> None:
    """The provider's development pages: any login and password, then consent."""
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # consent: "Continue"


def test_oidc_provider_completes_a_code_flow_with_pkce(page_for: PageFactory) -> None:
    with serve_html({"/callback": "<!doctype html><html lang='en'><title>Back</title><p>back</p></html>"}) as rp:
        redirect_uri = f"{rp}/callback"
        with running_oidc_provider([redirect_uri]) as provider:
            metadata = provider.discovery()
            assert metadata["issuer"] == provider.issuer
            assert metadata["code_challenge_methods_supported"] == ["S256"]
            key_set = KeySet.import_key_set(httpx.get(metadata["jwks_uri"]).json())

            client = OAuth2Client(provider.client_id, provider.client_secret, scope="openid email profile",
                                  redirect_uri=redirect_uri, code_challenge_method="S256")
            verifier, nonce = generate_token(48), generate_token(20)
            authorization_url, state = client.create_authorization_url(
                metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
            assert "code_challenge=" in authorization_url and "code_challenge_method=S256" in authorization_url

            with page_for(provider.issuer) as page:
                page.goto(authorization_url)
                screenshot(page, "harness-oidc-login")
                _sign_in_at_provider(page, "ada@example.test")
                page.wait_for_url(f"{redirect_uri}?**")
                callback_url = page.url
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(callback_url).query)
            assert query["state"] == [state] and query["iss"] == [provider.issuer]

            # Without the verifier the provider refuses the code: PKCE is really enforced.
            refused = httpx.post(metadata["token_endpoint"], auth=(provider.client_id, provider.client_secret),
                                 data={"grant_type": "authorization_code", "code": query["code"][0],
                                       "redirect_uri": redirect_uri})
            assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"

            # A second code flow, since a refused code is burnt; this one is exchanged with the verifier.
            authorization_url, state = client.create_authorization_url(
                metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
            with page_for(provider.issuer) as page:
                page.goto(authorization_url)
                _sign_in_at_provider(page, "ada@example.test")
                page.wait_for_url(f"{redirect_uri}?**")
                callback_url = page.url
            token = client.fetch_token(metadata["token_endpoint"], authorization_response=callback_url,
                                       state=state, code_verifier=verifier)

    decoded = jwt.decode(token["id_token"], key_set, algorithms=metadata["id_token_signing_alg_values_supported"])
    options = {"iss": {"essential": True, "value": provider.issuer},
               "aud": {"essential": True, "value": provider.client_id}}
    claims = CodeIDToken(decoded.claims, decoded.header, options,
                         {"nonce": nonce, "client_id": provider.client_id, "access_token": token["access_token"]})
    claims.validate()
    assert claims["sub"] == "ada@example.test" and claims["email"] == "ada@example.test"
    assert claims["email_verified"] is True and claims["nonce"] == nonce and claims["aud"] == provider.client_id

    forged = CodeIDToken(decoded.claims, decoded.header, options,
                         {"nonce": "another nonce", "client_id": provider.client_id})
    with pytest.raises(InvalidClaimError, match="nonce"):
        forged.validate()
    other_audience = CodeIDToken(decoded.claims, decoded.header, {**options, "aud": {"value": "another client"}},
                                 {"nonce": nonce, "client_id": provider.client_id})
    with pytest.raises(InvalidClaimError, match="aud"):
        other_audience.validate()
