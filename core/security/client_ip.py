"""Who is calling: the client address behind trusted reverse proxies, and the allowlist.

``X-Forwarded-For`` is a list every hop appends to, so only its right end is trustworthy:
walking from the right, each hop added by one of *our* proxies is skipped, and the first
address that is not ours is the client. The left-most entry is whatever the client wrote
(aiogram's ``check_ip`` trusts it, which lets anyone claim a TradingView address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 32  # a longer chain is not a real proxy path; stop reading it


def parse_ip(text: str | None) -> IPAddress | None:
    """An address as written by a peer or a proxy, or ``None`` when it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``::1``, ``[::1]:5678`` and IPv4-mapped IPv6
    (``::ffff:1.2.3.4``, as dual-stack sockets report IPv4 peers), which becomes IPv4.
    """
    if not text:
        return None
    value = text.strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # IPv4 with a port; IPv6 has at least two colons
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address in network for network in networks)


def client_ip(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The address of the client that sent the request.

    Args:
        peer: The TCP peer address (``request.remote``).
        forwarded_for: Every ``X-Forwarded-For`` header value, in the order received.
        trusted: Networks of our own reverse proxies (``TRUSTED_PROXIES``).

    Returns:
        The peer itself unless it is a trusted proxy; otherwise the right-most
        ``X-Forwarded-For`` hop that is not a trusted proxy (the left-most when all are).
        ``None`` when that hop is not an address (or the chain is too long), so a garbled
        header never passes an allowlist.
    """
    address = parse_ip(peer)
    if address is None or not trusted or not _in(address, trusted):
        return address
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    if not hops:
        return address  # a trusted proxy that did not forward: the proxy is the client
    if len(hops) > MAX_HOPS:
        return None
    found: IPAddress | None = address
    for raw in reversed(hops):
        found = parse_ip(raw)
        if found is None:
            return None
        if not _in(found, trusted):
            return found
    return found


def ip_allowed(address: IPAddress | None, allowlist: Sequence[IPNetwork] | None) -> bool:
    """Whether ``address`` may call webhooks (``allowlist`` ``None`` allows anyone)."""
    if allowlist is None:
        return True
    return address is not None and _in(address, allowlist)


class SenderPolicy:
    """The webhook sender rules of one process: allowlist and trusted proxies, parsed once.

    Args:
        allowlist: Networks allowed to call webhooks; ``None`` allows anyone.
        trusted_proxies: Networks of our reverse proxies.
    """

    __slots__ = ("allowlist", "trusted_proxies")

    def __init__(
        self, allowlist: Sequence[IPNetwork] | None, trusted_proxies: Sequence[IPNetwork]
    ) -> None:
        self.allowlist = tuple(allowlist) if allowlist is not None else None
        self.trusted_proxies = tuple(trusted_proxies)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> IPAddress | None:
        """The client address (see :func:`client_ip`)."""
        return client_ip(peer, forwarded_for, self.trusted_proxies)

    def allows(self, address: IPAddress | None) -> bool:
        """Whether this client may call webhooks."""
        return ip_allowed(address, self.allowlist)
