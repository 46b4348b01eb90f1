"""The SSRF guard: never fetch, or connect to, an internal address.

:func:`check_url_allowed` vets a URL before a request (and each redirect hop);
:class:`PinnedBackend` re-checks at connect time on the same DNS lookup it
connects with, so a DNS-rebinding host cannot pass the first check and connect
inside. Loopback, private, link-local (cloud metadata), multicast and reserved
ranges are refused unless the operator allowed a network explicitly.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from .errors import PermanentError, TransientError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """The operator's allowed networks (``INGEST_ALLOW_PRIVATE_NETWORKS``), parsed once
    per distinct list: :func:`check_url_allowed` runs before every request and hop."""
    return _parsed_networks(tuple(cidrs))


@lru_cache(maxsize=32)
def _parsed_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def check_url_allowed(
    url: str,
    *,
    allowed_networks: Iterable[str] = (),
    resolver: Callable[[str, int], list[str]] | None = None,
) -> None:
    """Refuse non-http(s) URLs and hosts that resolve to internal addresses (SSRF).

    Loopback, private, link-local (including cloud metadata at 169.254.169.254),
    multicast and reserved ranges are refused unless the operator allowed the
    network explicitly in settings. Every resolved address must pass, so a DNS
    name with one public and one private record is refused.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PermanentError(
            f"scheme {parts.scheme or '(none)'!r} refused", url=url, error_class="bad_url"
        )
    host = parts.hostname
    if not host:
        raise PermanentError("URL has no host", url=url, error_class="bad_url")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise PermanentError(f"bad port: {exc}", url=url, error_class="bad_url") from exc
    resolve = resolver or _resolve
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise TransientError(f"DNS lookup failed: {exc}", url=url, error_class="dns") from exc
    blocked = first_blocked_address(addresses, parse_networks(allowed_networks))
    if blocked is not None:
        raise PermanentError(
            f"refusing to fetch internal address {blocked}", url=url, error_class="ssrf_blocked"
        )


def first_blocked_address(
    addresses: Iterable[str],
    allowed: Sequence[Network],
) -> str | None:
    """The first address that is internal and not explicitly allowed, or None."""
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if mapped is not None:
            ip = mapped
        if any(ip in net for net in allowed):
            continue
        if not ip.is_global or ip.is_multicast:
            return str(ip)
    return None


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


class BlockedAddressError(Exception):
    """Raised inside the HTTP transport when a connection would reach an internal address."""


def resolve_checked(
    host: str,
    port: int,
    allowed: Sequence[Network],
    *,
    resolver: Callable[[str, int], list[str]] | None = None,
) -> list[str]:
    """The addresses to connect to for ``host``, all of them checked, from one lookup.

    Connecting code must use these addresses and not resolve the name again: a
    DNS-rebinding host (a TTL-0 record that answers a public address first and an
    internal one next) would otherwise pass the check and connect inside. Raises
    :class:`BlockedAddressError`, or :class:`OSError` when the lookup fails.
    """
    try:
        addresses = (resolver or _resolve)(host, port)
    except (OSError, UnicodeError) as exc:
        raise OSError(f"DNS lookup failed: {exc}") from exc
    blocked = first_blocked_address(addresses, allowed)
    if blocked is not None:
        raise BlockedAddressError(f"refusing to connect to internal address {blocked}")
    return addresses


class PinnedBackend(httpcore.SyncBackend):
    """Opens sockets only to addresses that pass the SSRF check, on the same lookup.

    :func:`check_url_allowed` resolves the host before a request; httpcore would
    resolve it again to connect, and a DNS-rebinding host (a TTL-0 record that
    answers a public address first and an internal one next) would pass the
    check and connect inside. Here the name is resolved once at connect time,
    every address is checked, and the socket goes to a checked address.
    """

    def __init__(
        self,
        allowed_networks: Iterable[str] = (),
        *,
        resolver: Callable[[str, int], list[str]] | None = None,
    ) -> None:
        self._allowed = parse_networks(allowed_networks)
        self._resolve = resolver or _resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_checked(host, port, self._allowed, resolver=self._resolve)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    address, port, timeout, local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport over :class:`PinnedBackend` (httpx has no public hook for it)."""

    def __init__(self, backend: PinnedBackend) -> None:
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )
