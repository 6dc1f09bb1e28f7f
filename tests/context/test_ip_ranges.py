"""AWS's IP ranges: the shipped excerpt, lookups by longest prefix, and `sesguard ip-ranges` downloading the
list from a local HTTP server into the store, where every process reads it."""

from __future__ import annotations

import ipaddress
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bot.cli.commands import main
from bot.context import ip_ranges
from bot.context.ip_ranges import BadRanges, parse

DOWNLOADED = {
    "syncToken": "1767225600",
    "createDate": "2026-01-01-00-00-00",
    "prefixes": [
        {"ip_prefix": "203.0.113.0/24", "region": "eu-central-2", "service": "AMAZON",
         "network_border_group": "eu-central-2"},
        {"ip_prefix": "203.0.113.0/25", "region": "eu-central-2", "service": "AMAZON",
         "network_border_group": "eu-central-2"},
        {"ip_prefix": "203.0.113.0/25", "region": "eu-central-2", "service": "EC2",
         "network_border_group": "eu-central-2"},
    ],
    "ipv6_prefixes": [
        {"ipv6_prefix": "2001:db8::/32", "region": "GLOBAL", "service": "CLOUDFRONT", "network_border_group": "GLOBAL"},
    ],
}


class Files:
    """A local HTTP server answering each path with the body (or status) the test set."""

    def __init__(self) -> None:
        self.bodies: dict[str, tuple[int, bytes]] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                status, body = files.bodies.get(self.path, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def files():
    server = Files()
    yield server
    server.stop()


@pytest.fixture
def cli_store(sqlite_store, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", sqlite_store.url)
    return sqlite_store


def test_the_shipped_excerpt_is_in_the_published_format():
    shipped = ip_ranges.shipped()
    raw = json.loads(ip_ranges.SHIPPED.read_text())
    assert set(raw) == {"syncToken", "createDate", "prefixes", "ipv6_prefixes"}
    assert all(set(entry) == {"ip_prefix", "region", "service", "network_border_group"} for entry in raw["prefixes"])
    assert shipped.shipped and shipped.published == "2025-01-01" and shipped.count == len(raw["prefixes"]) + len(
        raw["ipv6_prefixes"])


@pytest.mark.parametrize("address, found", [
    ("3.80.1.2", ("3.80.0.0/12", "EC2", "us-east-1")),  # the service named beside AMAZON
    ("52.94.1.1", ("52.94.0.0/22", "AMAZON", "us-east-1")),  # AMAZON alone
    ("54.230.7.7", ("54.230.0.0/16", "CLOUDFRONT", "GLOBAL")),
    ("2a05:d018::10", ("2a05:d018::/35", "EC2", "eu-west-1")),
    ("203.0.113.9", None),
    ("::ffff:3.80.1.2", None),  # an IPv4-mapped IPv6 address is not looked up as IPv4
])
def test_an_address_is_found_in_its_narrowest_range(address, found):
    match = ip_ranges.shipped().find(ipaddress.ip_address(address))
    assert (None if match is None else (match.prefix, match.service, match.region)) == found


def test_the_narrowest_range_wins():
    ranges = parse(json.dumps(DOWNLOADED).encode())
    inside = ranges.find(ipaddress.ip_address("203.0.113.5"))
    outside = ranges.find(ipaddress.ip_address("203.0.113.200"))
    assert inside is not None and (inside.prefix, inside.services) == ("203.0.113.0/25", ("EC2", "AMAZON"))
    assert outside is not None and (outside.prefix, outside.services) == ("203.0.113.0/24", ("AMAZON",))


@pytest.mark.parametrize("document, problem", [
    (b"<html>", "not JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({**DOWNLOADED, "syncToken": 1}).encode(), "syncToken"),
    (json.dumps({**DOWNLOADED, "createDate": "yesterday"}).encode(), "createDate"),
    (json.dumps({**DOWNLOADED, "prefixes": "x"}).encode(), "prefixes is not a list"),
    (json.dumps({**DOWNLOADED, "prefixes": [{"ip_prefix": "300.0.0.0/8", "region": "x", "service": "EC2"}]}).encode(),
     "prefixes[1].ip_prefix is not a network"),
    (json.dumps({**DOWNLOADED, "prefixes": [{"ip_prefix": "2001:db8::/32", "region": "x", "service": "EC2"}]}).encode(),
     "is not an IPv4 network"),
    (json.dumps({**DOWNLOADED, "prefixes": [{"ip_prefix": "10.0.0.0/8", "region": "<!channel>", "service": "EC2"}]})
     .encode(), "prefixes[1].region is not a name"),
    (json.dumps({**DOWNLOADED, "prefixes": [], "ipv6_prefixes": []}).encode(), "lists no range"),
])
def test_a_document_that_is_no_ip_ranges_json_is_refused(document, problem):
    with pytest.raises(BadRanges, match=problem.replace("[", r"\[").replace("]", r"\]")):
        parse(document)


def test_sesguard_ip_ranges_stores_the_download_and_every_lookup_uses_it(files, cli_store, capsys):
    files.bodies["/ip-ranges.json"] = (200, json.dumps(DOWNLOADED).encode())
    assert ip_ranges.current(cli_store).shipped
    assert main(["ip-ranges", "--url", f"{files.base}/ip-ranges.json"]) == 0
    said = capsys.readouterr().err
    assert "stored syncToken 1767225600 of 2026-01-01-00-00-00 (4 ranges); was the shipped excerpt of " \
           "2025-01-01-00-00-00" in said
    current = ip_ranges.current(cli_store)
    assert (current.shipped, current.sync_token, current.published) == (False, "1767225600", "2026-01-01")
    assert current.find(ipaddress.ip_address("203.0.113.5")) is not None
    assert current.find(ipaddress.ip_address("3.80.1.2")) is None  # the excerpt is no longer used
    # a second download replaces the first
    files.bodies["/ip-ranges.json"] = (200, json.dumps({**DOWNLOADED, "syncToken": "1767312000"}).encode())
    assert main(["ip-ranges", "--url", f"{files.base}/ip-ranges.json"]) == 0
    assert "was syncToken 1767225600" in capsys.readouterr().err
    assert ip_ranges.current(cli_store).sync_token == "1767312000"


@pytest.mark.parametrize("status, body, said", [
    (404, b"not found", "HTTP Error 404"),
    (200, b"<html>captive portal</html>", "not JSON"),
    (200, json.dumps({**DOWNLOADED, "prefixes": None}).encode(), "prefixes is not a list"),
])
def test_a_download_that_fails_or_is_no_list_leaves_the_list_in_use(files, cli_store, capsys, status, body, said):
    files.bodies["/ip-ranges.json"] = (status, body)
    assert main(["ip-ranges", "--url", f"{files.base}/ip-ranges.json"]) == 1
    err = capsys.readouterr().err
    assert said in err and "the list in use is unchanged" in err
    assert ip_ranges.current(cli_store).shipped


def test_an_unreachable_url_exits_1(cli_store, capsys):
    assert main(["ip-ranges", "--url", "http://127.0.0.1:9/ip-ranges.json"]) == 1
    assert "the list in use is unchanged" in capsys.readouterr().err
