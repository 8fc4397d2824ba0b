"""A real OpenID Connect provider for the tests: the certified ``oidc-provider`` npm package, run by node.

``tests/browser/node/oidc_server.mjs`` configures it: issuer ``http://127.0.0.1:PORT``, one confidential
client (authorization code with PKCE S256 required), a signing key made at start, and its development
login and consent pages, where any login signs in (it becomes the subject; the email is the login when it
holds an ``@``, else ``login@example.test``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from tests.support.browser import NODE_DIR, require_browser_tools
from tests.support.server import free_port

SERVER_SCRIPT = NODE_DIR / "oidc_server.mjs"


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def discovery(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.discovery_url, timeout=5) as response:
            document: dict[str, Any] = json.load(response)
        return document


def _stderr_text(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-2000:]


@contextmanager
def running_oidc_provider(redirect_uris: Sequence[str], client_id: str = "feedbackloop-test",
                          client_secret: str | None = None, token_auth: str = "client_secret_basic",
                          claims_in: str = "id_token", timeout_s: float = 30.0) -> Iterator[OidcProvider]:
    """The provider on a free loopback port, yielded once its discovery document answers; stopped after.

    ``claims_in="userinfo"`` keeps email and name out of the ID token (only the userinfo endpoint has them).
    """
    require_browser_tools()
    node = shutil.which("node")
    assert node is not None
    port = free_port()
    provider = OidcProvider(f"http://127.0.0.1:{port}", client_id, client_secret or secrets.token_urlsafe(24),
                            tuple(redirect_uris))
    # Development mode: production refuses this http issuer's features that assume TLS.
    env = {**os.environ, "NODE_ENV": "development", "OIDC_PORT": str(port), "OIDC_CLIENT_ID": client_id,
           "OIDC_CLIENT_SECRET": provider.client_secret, "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
           "OIDC_TOKEN_AUTH": token_auth, "OIDC_CLAIMS_IN": claims_in}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([node, str(SERVER_SCRIPT)], env=env, cwd=NODE_DIR,
                                   stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"the OIDC provider exited on start:\n{_stderr_text(log)}")
                try:
                    if provider.discovery().get("issuer") == provider.issuer:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the OIDC provider did not come up:\n{_stderr_text(log)}")
                time.sleep(0.1)
            yield provider
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
