"""Routing target ``email``: an e-mail per theme over SMTP, updates as replies in the same thread.

The Message-ID is derived from the delivery's idempotency key and updates carry ``In-Reply-To`` and
``References`` to it, so mail clients thread them and can drop a repeated message with the same id.

Target options: ``host``, ``port`` (default 25), ``from``, ``to`` (an address or a list), ``starttls``
(default false), ``username`` and ``password_env`` (environment variable holding the password). The
host obeys the outbound policy (``core.outbound``): only host entries of FEEDBACKLOOP_OUTBOUND_ALLOWED
count, and every address it resolves to is checked before connecting.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from core import hookimpl
from core.outbound import check_host
from core.secrets import optional_secret_from_env
from core.types import DeliveryRequest, DeliveryResult, TargetType

SMTP_TIMEOUT_S = 20.0
MESSAGE_ID_DOMAIN = "feedbackloop.invalid"


def message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{MESSAGE_ID_DOMAIN}>"


def recipients(options: Mapping[str, Any]) -> list[str]:
    value = options.get("to")
    addresses = [value] if isinstance(value, str) else list(value or [])
    if not addresses or not options.get("host") or not options.get("from"):
        raise ValueError("email target needs 'host', 'from' and 'to' options")
    return [str(address) for address in addresses]


def build_message(request: DeliveryRequest) -> EmailMessage:
    options = request.options
    original = message_id(request.idempotency_key)
    mail = EmailMessage()
    mail["From"] = str(options["from"])
    mail["To"] = ", ".join(recipients(options))
    mail["Date"] = formatdate(localtime=False)
    if request.existing_ref is None and request.event != "spike":
        mail["Subject"] = request.title
        mail["Message-ID"] = original
        mail.set_content(request.body)
        return mail
    key = request.update_key or f"{request.idempotency_key}:{request.event}"
    mail["Subject"] = f"Re: {request.title}"
    mail["Message-ID"] = message_id(key)
    if request.existing_ref is not None:
        mail["In-Reply-To"] = request.existing_ref
        mail["References"] = request.existing_ref
    lead = "Spike" if request.event == "spike" else f"The theme grew to {request.theme.volume} items."
    mail.set_content(f"{lead}\n\n{request.body}")
    return mail


def deliver(request: DeliveryRequest) -> DeliveryResult:
    options = request.options
    mail = build_message(request)
    password = optional_secret_from_env(options, "password_env", "the email target's password", request.settings)
    host, port = str(options["host"]), int(options.get("port", 25))
    check_host(host, port, request.settings, "the email target")
    with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S) as smtp:
        if options.get("starttls"):
            # A verifying context: smtplib's default accepts any certificate, and the password follows.
            smtp.starttls(context=ssl.create_default_context())
        if options.get("username") and password:
            smtp.login(str(options["username"]), password)
        smtp.send_message(mail)
    return DeliveryResult(external_ref=request.existing_ref or message_id(request.idempotency_key))


@hookimpl
def register_target_types(register: Callable[[TargetType], None]) -> None:
    register(TargetType(name="email", description="E-mail over SMTP, updates threaded as replies",
                        deliver=deliver))
