"""Chat webhook (Slack-compatible JSON) and e-mail over a real SMTP server on loopback (aiosmtpd).
Neither carries the seeded e-mail addresses, phone numbers or card numbers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import Delivery
from core.routing.outbox import DeliveryPolicy, send_due
from core.routing.plan import route
from core.themes.build import embed_pending, recluster
from core.types import ItemDraft
from tests.support.http_fakes import JsonHandler, serve
from tests.support.loops import make_loop

NO_BACKOFF = DeliveryPolicy(backoff_base_s=0)
SEEDED = ["refund missing for my order please, mail me at jo{i}@example.com or call +44 20 7946 09{i:02d}",
          "refund missing for my order please, card 4111 1111 1111 1111 charged on day {i}"]
PERSONAL = ("example.com", "20 7946", "4111 1111")


class ChatServer:
    """A Slack-compatible incoming webhook: records each JSON message and when it arrived."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, Any]]] = []
        owner = self

        class Handler(JsonHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                owner.messages.append((time.monotonic(), self.read_json()))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server, base_url = serve(Handler)
        self.url = f"{base_url}/hooks/abc"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's naming)
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def loop_with(tmp_path: Path, target: str, options: str) -> FeedbackLoop:
    rules = tmp_path / "rules.toml"
    rules.write_text(f'[default]\nowner = "support"\ntarget = "{target}"\ntarget_options = {{ {options} }}\n')
    return make_loop(f"sqlite:///{tmp_path / 'targets.db'}", rules_file=rules)


def add(loop: FeedbackLoop, texts: list[str]) -> None:
    with loop.session() as session:
        ingest(loop, session, [ItemDraft(text=text) for text in texts])
        embed_pending(loop, session)
        recluster(loop, session)


def test_chat_webhook_gets_slack_json_without_personal_data(tmp_path: Path, chat: ChatServer) -> None:
    loop = loop_with(tmp_path, "chat_webhook", f'url = "{chat.url}"')
    add(loop, [SEEDED[i % 2].format(i=i) for i in range(8)])
    assert route(loop, NO_BACKOFF).sent == 1
    add(loop, [SEEDED[0].format(i=i) for i in range(8, 11)])
    assert send_due(loop, NO_BACKOFF).updated == 1
    assert len(chat.messages) == 2
    for _, payload in chat.messages:
        assert set(payload) == {"text"} and isinstance(payload["text"], str)
        assert not any(value in payload["text"] for value in PERSONAL)
    assert "[feedbackloop]" in chat.messages[0][1]["text"] and "grew to" in chat.messages[1][1]["text"]


def test_chat_webhook_failure_is_recorded(tmp_path: Path) -> None:
    loop = loop_with(tmp_path, "chat_webhook", 'url = "http://127.0.0.1:9/nothing-listens"')
    add(loop, [SEEDED[i % 2].format(i=i) for i in range(8)])
    assert route(loop, NO_BACKOFF).failed == 1
    with loop.session() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.state == "failed" and "ConnectError" in (delivery.last_error or "")


def test_email_over_real_smtp_threads_updates(tmp_path: Path, smtp: tuple[Mailbox, int]) -> None:
    mailbox, port = smtp
    loop = loop_with(tmp_path, "email",
                     f'host = "127.0.0.1", port = {port}, from = "feedbackloop@localhost", to = ["support@localhost"]')
    add(loop, [SEEDED[i % 2].format(i=i) for i in range(8)])
    assert route(loop, NO_BACKOFF).sent == 1
    add(loop, [SEEDED[0].format(i=i) for i in range(8, 11)])
    assert send_due(loop, NO_BACKOFF).updated == 1
    first, update = (message_from_bytes(raw) for raw in mailbox.messages)
    assert first["Subject"].startswith("[feedbackloop] ") and first["To"] == "support@localhost"
    assert update["In-Reply-To"] == first["Message-ID"] and update["Subject"].startswith("Re: ")
    for mail in (first, update):
        text = mail.get_payload(decode=True).decode()
        assert "/themes/" in text and not any(value in text for value in PERSONAL)
