"""PostgreSQL away while webhooks keep coming (issue 17): the API answers 503 with ``Retry-After`` (never a
500, never an acknowledgement of what was not stored), and takes deliveries again by itself once the
database is back. The database sits behind a TCP proxy that the test cuts: to the server it is down
exactly as when it restarts (connections refused and broken), and the machine's PostgreSQL is untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.intake.channels import add_channel
from core.models import FeedbackItem
from plugins.generic_webhook import sign
from tests.support.loops import make_loop
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("database_url", ["postgres"], indirect=True)]

SECRET = "outage-secret-0123456789"


@pytest.fixture
def proxy(database_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(database_url)
    with tcp_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as running:
        yield running


def through(database_url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(database_url)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def post(client: TestClient, external_id: str) -> tuple[int, dict[str, str]]:
    body = json.dumps({"id": external_id, "text": f"the export button does nothing ({external_id})"}).encode()
    answer = client.post("/webhooks/hook", content=body, headers={
        "X-Feedbackloop-Signature": sign(SECRET, body), "X-Feedbackloop-Delivery": external_id})
    return answer.status_code, dict(answer.headers)


def test_webhooks_answer_503_with_retry_after_while_the_database_is_down_and_recover_by_themselves(
        database_url: str, proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    loop = make_loop(through(database_url, proxy))
    try:
        with loop.session() as session:
            add_channel(loop, session, "hook", "webhook", secret_env="HOOK_SECRET")
        app = create_app(loop.settings, loop=loop)
        with TestClient(app) as client:
            assert post(client, "before")[0] == 202

            proxy.cut()
            status, headers = post(client, "while-down")  # the channel's configuration still cached: the store fails
            assert status == 503 and int(headers["retry-after"]) > 0
            app.state.webhook_intake.forget_channels()
            status, headers = post(client, "while-down-uncached")  # now the channel lookup itself fails
            assert status == 503 and int(headers["retry-after"]) > 0

            proxy.restore()  # the pool's dead connections are found out and replaced: no restart needed
            assert post(client, "after")[0] == 202
            assert post(client, "while-down")[0] == 202  # the sender's retry of what was refused
        with loop.session() as session:
            stored = sorted(session.scalars(select(FeedbackItem.external_id)))
        assert stored == ["after", "before", "while-down"]  # refused means not stored; retried means stored once
    finally:
        loop.close()
