"""The outbound policy (core/outbound.py, core/secrets.py): only http(s), no internal addresses unless an
operator allowed them (checked after DNS, on every connection and every redirect), the allow-list of hosts
and URL prefixes, and ``*_env`` options limited to the variables an operator allowed, never the app's own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.errors import ConfigurationError
from core.intake.channels import ChannelError, add_channel
from core.loop import FeedbackLoop
from core.outbound import OutboundRefused, http_client
from core.routing.rules import RulesError, parse_rules
from core.secrets import SecretEnvRefused, secret_from_env
from core.settings import Settings
from core.types import DeliveryRequest, ThemeView
from plugins import chat_webhook, email_smtp, jira, redmine
from tests.support.http_fakes import JsonHandler

STRICT = {"outbound_allowed": "", "outbound_allow_private": "", "secret_env_allowed": "FEEDBACKLOOP_SECRET_*"}
REFUSED_URLS = [
    "http://127.0.0.1:9/hooks", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/", "http://[::1]/",
    "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://224.0.0.1/", "http://localhost:8080/",
    "http://100.64.0.1/", "file:///etc/passwd", "gopher://example.com:70/_stats", "ftp://example.com/",
]
THEME = ThemeView(id=1, label="Checkout fails", keywords=["checkout"], status="new", volume=3, share_of_voice=1.0,
                  mean_sentiment=-0.5, kinds={}, channels={}, quotes=[])


def strict(**changes: Any) -> Settings:
    return Settings(**{**STRICT, **changes})


def request(options: dict[str, Any], settings: Settings) -> DeliveryRequest:
    return DeliveryRequest(theme=THEME, owner="ops", options=options, title="[feedbackloop] Checkout fails",
                           body="3 items", idempotency_key="theme-1", settings=settings)


class Listener:
    """Records every request it gets; answers 200, or a redirect to ``redirect_to``."""

    def __init__(self, host: str = "127.0.0.1", redirect_to: str | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        owner = self

        class Handler(JsonHandler):
            def answer(self) -> None:
                owner.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
                if redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_json(200, {"ok": True, "issues": [], "issue": {"id": 1}})

            do_GET = do_POST = do_PUT = answer  # noqa: N815 (http.server's naming)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_internal_and_non_http_urls_are_refused_when_rules_are_saved(url: str) -> None:
    source = f'[default]\nowner = "ops"\ntarget = "chat_webhook"\ntarget_options = {{ url = "{url}" }}\n'
    with pytest.raises(RulesError, match="rule 'default': option 'url'") as refused:
        parse_rules(source, settings=strict())
    assert refused.value.status_code == 422


@pytest.mark.parametrize("url", REFUSED_URLS)
def test_internal_and_non_http_urls_are_refused_when_called(url: str) -> None:
    with pytest.raises(OutboundRefused):
        chat_webhook.deliver(request({"url": url}, strict()))


def test_a_name_resolving_to_a_private_address_is_refused_at_send_time(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"chat.example.com": ["10.0.0.7"], "mixed.example.com": ["93.184.216.34", "127.0.0.1"]}
    monkeypatch.setattr("core.outbound.resolve", lambda host, port: answers[host])
    for host in answers:  # a name is fine when saved (DNS can change): it is checked at every call
        parse_rules(f'[default]\nowner = "ops"\ntarget_options = {{ url = "https://{host}/hooks" }}\n',
                    settings=strict())
        with pytest.raises(OutboundRefused, match=f"{host}' resolves to"):
            chat_webhook.deliver(request({"url": f"https://{host}/hooks"}, strict()))


def test_an_allowed_private_name_is_called_at_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch,
                                                                          listener: Listener) -> None:
    port = listener.server.server_address[1]
    monkeypatch.setattr("core.outbound.resolve", lambda host, _port: {"chat.lan": ["127.0.0.1"]}[host])
    chat_webhook.deliver(request({"url": f"http://chat.lan:{port}/hooks/abc"},
                                 strict(outbound_allow_private="127.0.0.0/8")))
    assert [(seen["path"], seen["host"]) for seen in listener.requests] == [("/hooks/abc", f"chat.lan:{port}")]


def test_a_redirect_to_a_private_address_is_never_followed(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    inside = Listener("127.0.0.2")
    hop = Listener(redirect_to=f"{inside.url}/steal")
    monkeypatch.setenv("FEEDBACKLOOP_SECRET_REDMINE_KEY", "redmine-key")
    settings = strict(outbound_allow_private="127.0.0.1")
    options = {"url": hop.url, "project": "ops", "api_key_env": "FEEDBACKLOOP_SECRET_REDMINE_KEY"}
    try:
        with pytest.raises(httpx.HTTPStatusError):  # a credentialed call follows no redirect at all
            redmine.deliver(request(options, settings))
        with pytest.raises(OutboundRefused, match="127.0.0.2"), \
                http_client(settings, "a client that follows redirects", follow_redirects=True) as client:
            client.get(f"{hop.url}/start")  # and where redirects are followed, every hop is checked
        assert len(hop.requests) == 2 and hop.requests[0]["x-redmine-api-key"] == "redmine-key"
        assert inside.requests == []
    finally:
        inside.close()
        hop.close()


def test_the_allow_list_takes_hosts_wildcards_and_url_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.outbound.resolve", lambda host, port: ["93.184.216.34"])
    settings = strict(outbound_allowed="jira.example.com, *.atlassian.net, https://hooks.slack.com/services/")
    allowed = ["https://jira.example.com/", "https://acme.atlassian.net/rest", "https://hooks.slack.com/services/T1"]
    refused = ["https://example.com/", "https://atlassian.net.evil.example/", "https://hooks.slack.com/other",
               "http://hooks.slack.com/services/T1", "https://evil.example/"]
    for url in allowed:
        parse_rules(f'[default]\nowner = "ops"\ntarget_options = {{ url = "{url}" }}\n', settings=settings)
    for url in refused:
        with pytest.raises(RulesError, match="FEEDBACKLOOP_OUTBOUND_ALLOWED"):
            parse_rules(f'[default]\nowner = "ops"\ntarget_options = {{ url = "{url}" }}\n', settings=settings)
        with pytest.raises(OutboundRefused):
            chat_webhook.deliver(request({"url": url}, settings))


def test_jira_and_smtp_hosts_are_checked_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.outbound.resolve", lambda host, port: ["192.168.1.20"])
    with pytest.raises(OutboundRefused, match="jira.example.com' resolves to 192.168.1.20"):
        jira.deliver(request({"server": "https://jira.example.com", "project": "OPS"}, strict()))
    with pytest.raises(OutboundRefused, match="mail.example.com' resolves to 192.168.1.20"):
        email_smtp.deliver(request({"host": "mail.example.com", "from": "a@b.example", "to": "c@d.example"}, strict()))
    with pytest.raises(RulesError, match="option 'host'"):
        parse_rules('[default]\nowner = "ops"\ntarget = "email"\ntarget_options = { host = "127.0.0.1" }\n',
                    settings=strict())


@pytest.mark.parametrize("variable", ["FEEDBACKLOOP_JIRA_WEBHOOK_SECRET", "FEEDBACKLOOP_ADMIN_KEY",
                                      "FEEDBACKLOOP_DATABASE_URL", "FEEDBACKLOOP_PSEUDONYM_KEY",
                                      "FEEDBACKLOOP_SECRET_ENV_ALLOWED"])
def test_the_apps_own_settings_are_never_read_for_an_option(variable: str) -> None:
    with pytest.raises(SecretEnvRefused, match="feedbackloop's own settings"):
        secret_from_env({"api_key_env": variable}, "api_key_env", "the redmine target", strict(secret_env_allowed="*"))


def test_only_allowed_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_TOKEN", "x")
    monkeypatch.setenv("FEEDBACKLOOP_SECRET_REDMINE_KEY", "k")
    with pytest.raises(SecretEnvRefused, match=r"\$HOME_TOKEN is not an allowed variable.*FEEDBACKLOOP_SECRET_\*"):
        secret_from_env({"token_env": "HOME_TOKEN"}, "token_env", "the jira target", strict())
    with pytest.raises(SecretEnvRefused, match="not an environment variable name"):
        secret_from_env({"token_env": "A=B"}, "token_env", "the jira target", strict(secret_env_allowed="*"))
    assert secret_from_env({"k_env": "FEEDBACKLOOP_SECRET_REDMINE_KEY"}, "k_env", "x", strict()) == "k"
    assert secret_from_env({"k_env": "HOME_TOKEN"}, "k_env", "x", strict(secret_env_allowed="HOME_*")) == "x"
    with pytest.raises(ConfigurationError, match="needs the 'k_env' option"):
        secret_from_env({"k_env": "FEEDBACKLOOP_SECRET_UNSET_ONE"}, "k_env", "x", strict())


def test_a_refused_variable_is_refused_on_saving_and_never_sent(monkeypatch: pytest.MonkeyPatch, listener: Listener,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("FEEDBACKLOOP_JIRA_WEBHOOK_SECRET", "jira-webhook-secret")
    options = {"url": listener.url, "project": "ops", "api_key_env": "FEEDBACKLOOP_JIRA_WEBHOOK_SECRET"}
    settings = strict(outbound_allow_private="127.0.0.1", secret_env_allowed="*")
    source = ('[default]\nowner = "ops"\ntarget = "redmine"\ntarget_options = { '
              + ", ".join(f'{key} = "{value}"' for key, value in options.items()) + " }\n")
    with pytest.raises(RulesError, match=r"option 'api_key_env'.*own settings"):
        parse_rules(source, settings=settings)
    with pytest.raises(SecretEnvRefused):
        redmine.deliver(request(options, settings))
    assert listener.requests == []


def test_channels_refuse_forbidden_secrets_and_reply_urls(tmp_path: Path) -> None:
    from tests.support.loops import make_loop

    loop: FeedbackLoop = make_loop(f"sqlite:///{tmp_path / 'channels.db'}", **STRICT)
    try:
        with loop.session() as session, pytest.raises(ChannelError, match="own settings") as secret:
            add_channel(loop, session, "forum", "webhook", secret_env="FEEDBACKLOOP_ADMIN_KEY")
        with loop.session() as session, pytest.raises(ChannelError, match="option 'reply_url'") as url:
            add_channel(loop, session, "forum", "discourse", options={"reply_url": "http://169.254.169.254/"})
        assert secret.value.status_code == url.value.status_code == 422
    finally:
        loop.close()
