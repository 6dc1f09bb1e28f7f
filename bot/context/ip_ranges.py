"""AWS's published IP ranges (`ip-ranges.json`): is a source address AWS's, and which service and region (SPEC §10).

The format is AWS's (docs.aws.amazon.com/vpc/latest/userguide/aws-ip-ranges.html): `syncToken` (the publication
time in epoch seconds), `createDate` (`YYYY-MM-DD-hh-mm-ss`), `prefixes` (`ip_prefix`, `region`, `service`,
`network_border_group`) and `ipv6_prefixes` (the same with `ipv6_prefix`). Every range is listed under
`AMAZON` and again under the service that uses it (`EC2`, `CLOUDFRONT`, …), so an address is described by its
narrowest range and, there, by the service other than `AMAZON` when one is named.

A small excerpt ships with the package (`ip-ranges.json` beside this module, marked as such in the alert);
`sesguard ip-ranges` downloads the whole list and keeps it in the store, where every process reads it, so a
web process and a worker on different hosts answer alike and a read-only install needs no writable file.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlmodel import col, select

from bot.context.tables import IpRangesRow
from detection.store import Store, utcnow

AWS_URL = "https://ip-ranges.amazonaws.com/ip-ranges.json"
SHIPPED = Path(__file__).with_name("ip-ranges.json")
ROW_KEY = "aws"
# The whole list is about 2 MB today; a document much larger than that is no ip-ranges.json.
MAX_BYTES = 50 * 1024 * 1024
DOWNLOAD_TIMEOUT_SECONDS = 30
_CREATE_DATE = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # region, service and border group names as AWS writes them
ANY_SERVICE = "AMAZON"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class BadRanges(ValueError):
    """A document that is not an ip-ranges.json (the message says where it is wrong)."""


@dataclass(frozen=True)
class AwsRange:
    """The narrowest published range holding an address."""

    prefix: str
    region: str
    services: tuple[str, ...]  # the services named for that range, AMAZON last
    border_group: str

    @property
    def service(self) -> str:
        return self.services[0]


@dataclass(frozen=True)
class IpRanges:
    sync_token: str
    create_date: str
    shipped: bool  # the excerpt that ships with the package, not a download
    count: int  # ranges (IPv4 and IPv6, each service's listing counted)
    _by_length: dict[tuple[int, int], dict[int, list[tuple[str, str, str, str]]]]

    def find(self, address: Address) -> AwsRange | None:
        """The narrowest range holding `address`, or None."""
        bits = 32 if address.version == 4 else 128
        value = int(address)
        for length in range(bits, -1, -1):
            entries = self._by_length.get((address.version, length))
            if not entries:
                continue
            found = entries.get(value >> (bits - length) << (bits - length))
            if found:
                services = sorted({service for _, _, service, _ in found}, key=lambda s: (s == ANY_SERVICE, s))
                prefix, region, _, border = found[0]
                return AwsRange(prefix, region, tuple(services), border)
        return None

    @property
    def published(self) -> str:
        """`2025-01-01` from createDate `2025-01-01-00-00-00`."""
        return self.create_date[:10]


def parse(document: bytes, shipped: bool = False) -> IpRanges:
    """An ip-ranges.json document, checked entry by entry; BadRanges saying where it is wrong."""
    if len(document) > MAX_BYTES:
        raise BadRanges(f"larger than {MAX_BYTES // (1024 * 1024)} MB")
    try:
        data = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        raise BadRanges(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise BadRanges("not a JSON object")
    token, created = data.get("syncToken"), data.get("createDate")
    if not isinstance(token, str) or not token.isascii() or not token.isdigit():
        raise BadRanges("syncToken is not a number in a string")
    if not isinstance(created, str) or not _CREATE_DATE.fullmatch(created):
        raise BadRanges("createDate is not YYYY-MM-DD-hh-mm-ss")
    by_length: dict[tuple[int, int], dict[int, list[tuple[str, str, str, str]]]] = {}
    count = 0
    for listing, field, version in (("prefixes", "ip_prefix", 4), ("ipv6_prefixes", "ipv6_prefix", 6)):
        entries = data.get(listing)
        if not isinstance(entries, list):
            raise BadRanges(f"{listing} is not a list")
        for number, entry in enumerate(entries, 1):
            network, region, service, border = _entry(entry, field, version, f"{listing}[{number}]")
            key = (version, network.prefixlen)
            by_length.setdefault(key, {}).setdefault(int(network.network_address), []).append(
                (str(network), region, service, border))
            count += 1
    if not count:
        raise BadRanges("lists no range")
    return IpRanges(token, created, shipped, count, by_length)


def _entry(entry: object, field: str, version: int, where: str) -> tuple[Network, str, str, str]:
    if not isinstance(entry, dict):
        raise BadRanges(f"{where} is not an object")
    prefix, region, service = entry.get(field), entry.get("region"), entry.get("service")
    border = entry.get("network_border_group", region)
    for name, value in (("region", region), ("service", service), ("network_border_group", border)):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise BadRanges(f"{where}.{name} is not a name")
    try:
        network = ipaddress.ip_network(str(prefix))
    except ValueError:
        raise BadRanges(f"{where}.{field} is not a network") from None
    if network.version != version:
        raise BadRanges(f"{where}.{field} is not an IPv{version} network")
    return network, str(region), str(service), str(border)


# ── where the list comes from ────────────────────────────────────────────────────────────────────────

_cache_lock = threading.Lock()
_cache: dict[str, IpRanges] = {}  # by sync token ("shipped" for the excerpt): parsed once per process


def shipped() -> IpRanges:
    with _cache_lock:
        if "shipped" not in _cache:
            _cache["shipped"] = parse(SHIPPED.read_bytes(), shipped=True)
        return _cache["shipped"]


def current(store: Store) -> IpRanges:
    """The list in use: the one `sesguard ip-ranges` stored, else the shipped excerpt. Parsed once per
    download (a small query tells whether the stored one changed)."""
    with store.session() as session:
        token = session.exec(select(IpRangesRow.sync_token).where(IpRangesRow.key == ROW_KEY)).first()
    if token is None:
        return shipped()
    with _cache_lock:
        if token in _cache:
            return _cache[token]
    with store.session() as session:
        row = session.get(IpRangesRow, ROW_KEY)
    if row is None:  # deleted between the two reads
        return shipped()
    ranges = parse(row.document.encode())
    with _cache_lock:
        if len(_cache) > 4:  # a long-lived process that saw many refreshes keeps the shipped one and the newest
            _cache.clear()
        _cache[ranges.sync_token] = ranges
    return ranges


def download(url: str = AWS_URL, timeout: float = DOWNLOAD_TIMEOUT_SECONDS) -> bytes:
    """The document at `url` (at most MAX_BYTES); OSError (URLError, HTTPError, a timeout) when it cannot be had."""
    if not re.match(r"https?://", url):
        raise ValueError("the URL must be http(s)://")
    request = urllib.request.Request(url, headers={"User-Agent": "sesguard"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (http(s) only, checked above)
        body: bytes = answer.read(MAX_BYTES + 1)
    return body


@dataclass(frozen=True)
class Refreshed:
    before: IpRanges
    after: IpRanges


def refresh(store: Store, url: str = AWS_URL) -> Refreshed:
    """Download, check and store the list (every process uses it from its next lookup on). BadRanges or
    OSError when it cannot be had; the list in use stays as it was then."""
    before = current(store)
    document = download(url)
    after = parse(document)
    values = {"sync_token": after.sync_token, "create_date": after.create_date, "document": document.decode(),
              "stored_at": utcnow(), "source": url[:500]}
    with store.session() as session:  # two refreshes at once: one inserts, both update
        store.insert_ignoring_duplicates(session, IpRangesRow, [{"key": ROW_KEY, **values}])
        session.execute(sa.update(IpRangesRow).where(col(IpRangesRow.key) == ROW_KEY).values(**values))
        session.commit()
    return Refreshed(before, after)
