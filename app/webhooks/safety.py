"""Outbound request safety: no webhook reaches into the private network.

A webhook URL is resolved once per delivery; every address must be public (not
private, loopback, link-local, multicast, reserved or unspecified) unless
``POSTROOM_WEBHOOK_ALLOW_PRIVATE`` is set; the request then connects to the checked
address (the ``Host`` header and TLS server name keep the original host), so a DNS
answer cannot change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from app.errors import Invalid


class UnsafeURL(Exception):
    """The URL points somewhere webhooks may not go."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the URL to connect to (host replaced by the address) and the host."""

    url: str
    host: str
    scheme: str


def validate_url(url: str) -> str:
    """Syntactic check for the API (http/https with a host)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("url must be an http(s) URL with a host", field="url")
    return url.strip()


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Resolve and check ``url``; raises :class:`UnsafeURL`."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise UnsafeURL("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # An address literal needs no lookup (and no trip to the resolver's thread pool).
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UnsafeURL(f"cannot resolve {host}: {exc}") from exc
        addresses = [info[4][0] for info in infos]
    if not addresses:
        raise UnsafeURL(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            if not _public(address):
                raise UnsafeURL(f"{host} resolves to a non-public address ({address})")
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return Target(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), host, parts.scheme)
