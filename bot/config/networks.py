"""SESGUARD_KNOWN_NETWORKS: the organisation's own networks, `CIDR` or `CIDR=label`, comma-separated (SPEC §10).

Parsed here, beside the settings, so that a bad entry stops start-up with one line naming it; the triage
context (`bot.context.address`) matches source addresses against the parsed networks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

LABEL_LIMIT = 80
_LABEL = re.compile(rf"[^\x00-\x1f\x7f<>&]{{1,{LABEL_LIMIT}}}")


@dataclass(frozen=True)
class KnownNetwork:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    label: str | None

    def contains(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return address.version == self.network.version and address in self.network


def parse_network(entry: str) -> KnownNetwork:
    """`198.51.100.0/24=Berlin office` (or a bare CIDR, or one address); ValueError saying what is wrong."""
    cidr, sep, label = entry.partition("=")
    try:
        # strict=False: `198.51.100.7/24` is read as its network, as routers and firewalls read it
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        raise ValueError("is not a CIDR such as 198.51.100.0/24 or 2001:db8::/32 (optionally =label)") from None
    label = label.strip()
    if sep and not _LABEL.fullmatch(label):
        raise ValueError(f"its label must be 1 to {LABEL_LIMIT} characters, without control characters or <>&")
    return KnownNetwork(network, label or None)


def parse_networks(entries: list[str]) -> list[KnownNetwork]:
    """The settings' entries, most specific first (the alert names the narrowest network that holds an address)."""
    return sorted((parse_network(entry) for entry in entries),
                  key=lambda known: (known.network.version, -known.network.prefixlen))
