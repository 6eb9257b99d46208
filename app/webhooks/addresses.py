"""Where a webhook may point: http(s) to public addresses only, checked at every call.

A URL is refused when its host is, or resolves to, an address that is not globally
routable: loopback, private, link-local (169.254.169.254, the cloud metadata service),
unspecified (0.0.0.0, ::), multicast, reserved, shared (100.64/10), and the IPv4-mapped
IPv6 forms of all of these. Checking only at registration is not enough: a name can
resolve elsewhere later (DNS rebinding), so the sender resolves again, checks every
address, and connects to the address it checked (sender.py pins it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING

from app.errors import invalid

if TYPE_CHECKING:
    import httpx

MAX_URL = 2000


class Refused(Exception):
    """The URL may not be called: its scheme, or an address its host resolves to."""


def parse(url: str) -> httpx.URL:
    """The URL if its shape is callable (http or https with a host); Refused otherwise."""
    import httpx  # here, not at the top: see sender.py's docstring

    if len(url) > MAX_URL:
        raise Refused(f"the URL is longer than {MAX_URL} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise Refused(f"not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise Refused("the URL must be http:// or https:// with a host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise Refused("the port must be between 1 and 65535")
    return parsed


def _refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if not ip.is_global or ip.is_multicast:
        return "not public"
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (tests replace this, and only this, to fake DNS)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(url: httpx.URL, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for `url`, each allowed; Refused if any is not."""
    host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError, ValueError, OverflowError) as exc:
            raise Refused(f"{host} does not resolve: {exc}") from None
    if not addresses:
        raise Refused(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            reason = _refusal(address)
            if reason is not None:
                raise Refused(f"{host} resolves to {address}, a {reason} address")
    return addresses


async def check_url(url: str, *, allow_private: bool) -> str:
    """The URL to store, or a 422 at `url` saying why it may not be called."""
    try:
        parsed = parse(url)
        if not allow_private:
            await checked_addresses(parsed, allow_private=False)
    except Refused as exc:
        raise invalid("url", str(exc)) from None
    return str(parsed)
