"""Where a completion webhook may go, so a webhook is no way into the local network.

By default a webhook may reach only public addresses: loopback, private, link-local
(the cloud metadata address 169.254.169.254), shared (100.64.0.0/10), unspecified,
multicast and reserved addresses are refused, unless the setting
``webhook_allow_private`` is on. Checked twice:

- at enqueue, the URL: http or https, a host, no user name or password, and a host
  written as an address (in any form ``inet_aton`` takes: ``2130706433``,
  ``0x7f.1``, ``017700000001``, ``127.1``; IPv6, IPv4-mapped and NAT64 included)
  must be allowed; ``localhost`` names are loopback by definition;
- at send time, every address the host resolves to must be allowed, and the request
  goes to the address that was checked (no second lookup that could answer
  differently), with the URL's host in the ``Host`` header and TLS server name.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from typing import Any
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL = 2048
ALLOW_SETTING = "webhook_allow_private"
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class WebhookTargetRefused(ValueError):
    """A webhook URL or address that is not allowed (see the module docstring)."""


def check_url(value: object, allow_private: bool) -> str:
    """The URL if a webhook may be sent there, else ``ValueError`` / ``TypeError``
    naming the rule it breaks."""
    if not isinstance(value, str):
        raise TypeError(
            f"webhook must be an http:// or https:// URL (str); got {type(value).__name__}"
        )
    if not value.isascii() or not value.isprintable():
        raise ValueError(
            "webhook URL must be printable ASCII (write an international domain name in "
            "its xn-- form and percent-encode the rest)"
        )
    parts = _split(value)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"webhook must be an http:// or https:// URL with a host (at most {MAX_URL} "
            f"characters); got {value[:80]!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise WebhookTargetRefused(
            "webhook URL must not hold a user name or password ('user:password@host'): they "
            "would be kept and sent as given; put a token in the path or query instead"
        )
    if not allow_private:
        host = parts.hostname
        why = _literal_refusal(host)
        if why is not None:
            raise WebhookTargetRefused(f"webhook host {host!r} is {why}; {_RULE}")
    return value


def _split(value: str) -> SplitResult | None:
    if len(value) > MAX_URL:
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return None
    return parts


_RULE = (
    "completion webhooks may reach only public addresses (not loopback, private, "
    "link-local, shared, unspecified, multicast or reserved ones) unless the setting "
    f"{ALLOW_SETTING} is on"
)


def _literal_refusal(host: str) -> str | None:
    """Why a host written in the URL is refused, without any lookup (None: allowed,
    or a name that is checked when it is resolved)."""
    name = host.rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "a loopback name (localhost)"
    address = literal_address(host)
    if address is None:
        return None
    why = refusal(address)
    if why is None:
        return None
    shown = "" if str(address) == host else f" (the address {address})"
    return f"{why}{shown}"


def literal_address(host: str) -> IPAddress | None:
    """The address a host written as one stands for, in any form a resolver takes
    (``2130706433``, ``0x7f.1``, ``127.1`` …); None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        packed = socket.inet_aton(host)
    except (OSError, ValueError):
        return None
    return ipaddress.IPv4Address(packed)


def refusal(address: IPAddress) -> str | None:
    """Why a webhook may not go to ``address`` (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return None if inner is None else f"{inner} (inside the IPv6 address)"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (like the cloud metadata service 169.254.169.254)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if not address.is_global:
        return "not a public address"
    return None


AddrInfo = tuple[Any, ...]


def resolve(host: str, port: int, allow_private: bool) -> list[AddrInfo]:
    """Every address ``host`` resolves to (blocking: call it off the event loop);
    ``WebhookTargetRefused`` if any of them is not allowed, ``OSError`` if none."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not found:
        raise OSError(f"{host} resolves to no address")
    if not allow_private:
        for info in found:
            address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            why = refusal(address)
            if why is not None:
                raise WebhookTargetRefused(f"webhook host {host!r} resolves to {address}, {why}")
    return found


def _connect(addresses: list[AddrInfo], timeout: float) -> socket.socket:
    """A connection to the first of ``addresses`` that answers (the checked ones)."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


class PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to addresses resolved and checked beforehand."""

    def __init__(self, host: str, port: int, addresses: list[AddrInfo], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self._seconds = timeout

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self._seconds)


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to checked addresses; the certificate is verified for the
    URL's host name (also the TLS server name)."""

    def __init__(self, host: str, port: int, addresses: list[AddrInfo], timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._addresses = addresses
        self._seconds = timeout

    def connect(self) -> None:
        sock = _connect(self._addresses, self._seconds)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def open_connection(url: str, timeout: float, allow_private: bool) -> tuple[Any, str]:
    """A connection to the checked address of ``url``'s host, and the request target
    (path and query). Blocking: call it off the event loop."""
    check_url(url, allow_private=True)  # scheme, user, host: it may have been enqueued by hand
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    addresses = resolve(host, port, allow_private)
    kind = PinnedHTTPSConnection if secure else PinnedHTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return kind(host, port, addresses, timeout), target
