"""Which addresses an HTTP callback may reach (SSRF protection).

A callback URL comes from a producer's message; the worker must not become a way into its
own network. Public (global) addresses are allowed; loopback, private (RFC 1918),
link-local, unique-local, multicast, unspecified, reserved and other non-global ones only
inside ``HEADSWAP_CALLBACK_ALLOWED_NETWORKS``. An IPv6 address that carries an IPv4 one
(IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002:AABB:CCDD::``, Teredo ``2001:0::``, NAT64
``64:ff9b::a.b.c.d``) is judged by what it carries too: the network delivers it there.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Resolver = Callable[..., Sequence[tuple[Any, ...]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddress(Exception):
    """The callback host resolves to an address callbacks may not reach."""


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def identities(ip: IPAddress) -> list[IPAddress]:
    """Every address a packet to ``ip`` may end up at: the address itself (or, when
    IPv4-mapped, the IPv4 address the kernel uses instead) and any IPv4 address a
    transition prefix (6to4, Teredo, NAT64) embeds in it."""
    if isinstance(ip, ipaddress.IPv4Address):
        return [ip]
    if ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).split("%", 1)[0])
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    out: list[IPAddress] = [ip]
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)  # (server, client)
    if ip in NAT64:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def _public(a: IPAddress) -> bool:
    return not (
        a.is_loopback
        or a.is_private
        or a.is_link_local
        or a.is_multicast
        or a.is_unspecified
        or a.is_reserved
        or (isinstance(a, ipaddress.IPv6Address) and a.is_site_local)
        or not a.is_global
    )


def address_allowed(ip: IPAddress | str, allowed: Sequence[IPNetwork] = ()) -> bool:
    """May a callback connect to ``ip``? Only when each of its :func:`identities` is public
    or inside one of ``allowed``."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    return all(
        _public(a) or any(a.version == net.version and a in net for net in allowed)
        for a in identities(addr)
    )


def resolve_checked(
    host: str,
    port: int,
    allowed: Sequence[IPNetwork] = (),
    resolver: Resolver = socket.getaddrinfo,
) -> IPAddress:
    """Resolve ``host`` once and return the address to connect to.

    Raises :class:`BlockedAddress` when any resolved address is refused (a name that
    answers with both a public and a private address is refused as a whole), and
    ``socket.gaierror`` / ``OSError`` when the name does not resolve.
    """
    infos = resolver(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]
        addr = ipaddress.ip_address(raw)
        if addr not in addresses:
            addresses.append(addr)
    if not addresses:
        raise socket.gaierror(f"no address for {host}")
    blocked = [a for a in addresses if not address_allowed(a, allowed)]
    if blocked:
        raise BlockedAddress(f"{host} resolves to refused address {blocked[0]}")
    return addresses[0]
