"""Where feedbackloop may call out to: one policy for every target, reply and core call that leaves the machine.

Targets and replies carry credentials (API keys, tokens, secret webhook URLs), so a destination is checked
three times: when rules or channels are saved (a clear 422 naming the option), when a call is made, and on
every connection that call opens, after DNS, so a name that resolves (or re-resolves) to an internal
address is refused and a redirect cannot lead anywhere the first URL could not go. The rules:

- only ``http`` and ``https`` URLs (no ``file://``, ``gopher://``...);
- ``FEEDBACKLOOP_OUTBOUND_ALLOWED``, when set, lists the hosts (``jira.example.com``, ``*.example.com``) and
  URL prefixes (``https://hooks.slack.com/services/``) calls may go to; unset, any public host may be
  called, since destinations come only from what an admin configured (rules, channel options);
- private, loopback, link-local, multicast, reserved and unspecified addresses (``localhost`` too) are
  refused unless ``FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE`` names the host, the address or its network.

HTTP goes through ``http_client``: its transport resolves each request's host, checks every address, and
connects to the checked address itself (TLS still verifies the host name), so DNS cannot change between
the check and the connection. It follows no redirects (a custom header such as ``Api-Key`` would go
along) and ignores ``HTTP(S)_PROXY`` (a proxy would do its own resolving, out of reach of the check).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import httpx

from core.errors import ConfigurationError, InvalidInput
from core.secrets import check_secret_env
from core.settings import Settings, get_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Option names that hold a destination: checked when rules and channels are saved.
URL_OPTIONS = ("url", "server")
HOST_OPTIONS = ("host",)


class OutboundRefused(InvalidInput):
    """A destination the outbound policy does not allow; the message says which and why."""


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), which is what the packet reaches."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Routable on the internet: not private, loopback, link-local, multicast, reserved or unspecified."""
    inner = _embedded_ipv4(address)
    if inner is not None and not is_public(inner):
        return False
    return (address.is_global and not address.is_multicast and not address.is_reserved
            and not address.is_unspecified and not address.is_link_local)


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to play DNS)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise OutboundRefused(f"{host!r} does not resolve ({error})") from error
    return list(dict.fromkeys(str(answer[4][0]) for answer in answers))


@dataclass(frozen=True)
class OutboundPolicy:
    """The outbound settings, parsed: allowed hosts and URL prefixes, and what may be private."""

    hosts: tuple[str, ...] = ()
    prefixes: tuple[httpx.URL, ...] = ()
    private_hosts: frozenset[str] = frozenset()
    private_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        hosts, prefixes, private_hosts, networks = [], [], set(), []
        for entry in _split(settings.outbound_allowed):
            if "://" in entry:
                try:
                    prefix = httpx.URL(entry)
                except httpx.InvalidURL:
                    prefix = httpx.URL()
                if prefix.scheme not in SCHEMES or not prefix.host:
                    raise ConfigurationError(f"FEEDBACKLOOP_OUTBOUND_ALLOWED: {entry!r} is not an http(s) URL prefix")
                prefixes.append(prefix)
            else:
                hosts.append(entry.lower())
        for entry in _split(settings.outbound_allow_private):
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                private_hosts.add(entry.lower())
        return cls(tuple(hosts), tuple(prefixes), frozenset(private_hosts), tuple(networks))

    @property
    def restricted(self) -> bool:
        return bool(self.hosts or self.prefixes)

    def _host_listed(self, host: str) -> bool:
        return any(host == entry or (entry.startswith("*.") and fnmatchcase(host, entry)) for entry in self.hosts)

    def _prefix_listed(self, url: httpx.URL) -> bool:
        return any(url.scheme == prefix.scheme and url.host == prefix.host
                   and (url.port or DEFAULT_PORTS[url.scheme]) == (prefix.port or DEFAULT_PORTS[prefix.scheme])
                   and url.raw_path.decode("ascii", "replace").startswith(prefix.raw_path.decode("ascii", "replace"))
                   for prefix in self.prefixes)

    def address_allowed(self, host: str, address: IPAddress) -> bool:
        return (is_public(address) or host.lower() in self.private_hosts
                or any(address in network for network in self.private_networks if network.version == address.version))

    def check_host(self, host: str, what: str, listed: bool | None = None) -> str:
        """Checks that need no DNS: the allow-list, and literal or reserved-name internal addresses."""
        host = host.lower().rstrip(".")
        if not host:
            raise OutboundRefused(f"{what}: no host")
        if listed is None:
            listed = self._host_listed(host)
        if self.restricted and not listed:
            raise OutboundRefused(f"{what}: {host!r} is not in FEEDBACKLOOP_OUTBOUND_ALLOWED")
        literal = _literal_address(host)
        internal = not is_public(literal) if literal is not None else host == "localhost" or host.endswith(".localhost")
        if internal and not self.address_allowed(host, literal or ipaddress.ip_address("127.0.0.1")):
            raise OutboundRefused(f"{what}: {host!r} is a private, loopback or link-local address; list it in "
                                  "FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE to allow it")
        return host

    def check_url(self, url: str | httpx.URL, what: str) -> httpx.URL:
        try:
            parsed = httpx.URL(str(url))
        except (httpx.InvalidURL, TypeError, ValueError) as error:
            raise OutboundRefused(f"{what}: not a URL ({error})") from error
        if parsed.scheme not in SCHEMES:
            raise OutboundRefused(f"{what}: only http and https URLs may be called, not {parsed.scheme or 'none'!r}")
        self.check_host(parsed.host, what, listed=self._host_listed(parsed.host.lower()) or self._prefix_listed(parsed))
        return parsed

    def vetted_address(self, host: str, port: int, what: str) -> str:
        """The address to connect to: every address ``host`` resolves to must be allowed (one bad answer is
        enough to refuse: which one a connection would use is not ours to choose)."""
        literal = _literal_address(host)
        addresses = [str(literal)] if literal is not None else resolve(host, port)
        if not addresses:
            raise OutboundRefused(f"{what}: {host!r} does not resolve")
        for address in addresses:
            if not self.address_allowed(host, ipaddress.ip_address(address.split("%", 1)[0])):
                raise OutboundRefused(f"{what}: {host!r} resolves to {address}, a private, loopback or link-local "
                                      "address; list it in FEEDBACKLOOP_OUTBOUND_ALLOW_PRIVATE to allow it")
        return addresses[0]


def policy_for(settings: Settings | None) -> OutboundPolicy:
    """The policy of ``settings``, or of the process's settings when a caller has none to give."""
    return OutboundPolicy.from_settings(settings if settings is not None else get_settings())


class GuardedTransport(httpx.BaseTransport):
    """Checks every request (redirects included) and connects to the address it checked.

    The request goes to that address with the original ``Host`` header and TLS server name, so certificates
    are verified against the name. Connections are not kept: a pooled one, found by address, could
    otherwise serve a second name that happens to share it.
    """

    def __init__(self, policy: OutboundPolicy, what: str) -> None:
        self._policy = policy
        self._what = what
        self._inner = httpx.HTTPTransport(trust_env=False, limits=httpx.Limits(max_keepalive_connections=0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = self._policy.check_url(request.url, self._what)
        address = self._policy.vetted_address(url.host, url.port or DEFAULT_PORTS[url.scheme], self._what)
        pinned = httpx.Request(request.method, url.copy_with(host=address), headers=request.headers,
                               stream=request.stream, extensions={**request.extensions, "sni_hostname": url.host})
        return self._inner.handle_request(pinned)

    def close(self) -> None:
        self._inner.close()


def http_client(settings: Settings | None, what: str, **client_options: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request obeys the outbound policy (``what`` names the caller in errors).

    Redirects are not followed unless a caller asks (``follow_redirects=True``): headers such as ``Api-Key``
    would go along to the next host, which is checked like the first, but is still not the one configured.
    """
    policy = policy_for(settings)
    if "base_url" in client_options:
        policy.check_url(client_options["base_url"], what)
    client_options.setdefault("follow_redirects", False)
    return httpx.Client(transport=GuardedTransport(policy, what), trust_env=False, **client_options)


def check_url(url: str, settings: Settings | None, what: str) -> str:
    """A URL a library outside ``http_client`` will call (Jira's): checked now, DNS included."""
    policy = policy_for(settings)
    parsed = policy.check_url(url, what)
    policy.vetted_address(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme], what)
    return str(url)


def check_host(host: str, port: int, settings: Settings | None, what: str) -> str:
    """A host a non-HTTP client will connect to (SMTP): the address to connect to, checked after DNS.

    Only host entries of the allow-list count here: a URL prefix allows an HTTP path, not a mail server.
    """
    policy = policy_for(settings)
    policy.check_host(host, what)
    return policy.vetted_address(host, port, what)


def _env_options(options: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    return ((key, value) for key, value in options.items() if key.endswith("_env") and value not in (None, ""))


def check_destination_options(options: Mapping[str, Any], settings: Settings | None, what: str) -> None:
    """Save-time checks of target or channel options: URL and host options against the policy (without DNS,
    which is checked again at every call), ``*_env`` options against the allowed variable names."""
    policy = policy_for(settings)
    for key, value in options.items():
        if value in (None, ""):
            continue
        if key in URL_OPTIONS or key.endswith("_url"):
            policy.check_url(str(value), f"{what}: option {key!r}")
        elif key in HOST_OPTIONS:
            policy.check_host(str(value), f"{what}: option {key!r}")
    for key, value in _env_options(options):
        check_secret_env(value, settings, f"{what}: option {key!r}")
