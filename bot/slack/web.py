"""The HTTP face of the Slack app: a WSGI application, served by `sesguard serve` (the Procfile's `web`).

- `POST /slack/events`: events (incl. `url_verification`), slash commands and interactivity, all
  verified against `SLACK_SIGNING_SECRET` before anything in them is parsed (bad signature or stale
  timestamp: 401); a signed payload unlike what Slack sends gets 400 (`bot.slack.payloads`).
- `GET /healthz`: 200 and a JSON summary of status and counts; 503 when polling or delivery to Slack is
  failing or the store is unreachable. It answers anyone, so it names no account, role or error: the
  details are in `/sesguard status`, for triagers.
- `GET /metrics`: Prometheus's text format (`bot.health.metrics`); counts and sesguard's own words only, no
  value from CloudTrail or Slack, so it too may answer whoever reaches the port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import orjson
from slack_bolt import App, BoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.config.settings import Settings
from bot.config.startup import interrupt_on_sigterm, start
from bot.health.metrics import metrics_app
from bot.health.report import health
from bot.slack import payloads
from bot.slack.app import build_app
from detection.store import Store

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
# Slack's payloads are a few kilobytes; anything far larger is not from Slack.
MAX_BODY_BYTES = 1 << 20

# The server is waitress. Its event loop reads every request whole, head and body, before one of its
# threads takes it, so a client that sends half a request, or nothing at all, costs a socket and never a
# thread. Under gunicorn's threads, which read the request themselves, eight such connections held all
# eight threads and every Slack request timed out; gunicorn's async workers would need gevent to
# monkey-patch the whole process (psycopg, SQLite, Bolt's listener pool), and its docs put a buffering
# proxy in front instead. Waitress (Pylons) is pure Python and needs no proxy in front of it.
REQUEST_THREADS = 16  # requests acknowledged at once; the listeners' work runs on Bolt's own pool
QUIET_CONNECTION_SECONDS = 10  # an idle connection, or one stalled mid-request, is closed after this long
OPEN_CONNECTIONS = 500  # slow ones included; beyond, new connections wait in the listen backlog

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


def _status_line(status: int) -> str:
    return f"{status} {REASONS.get(status, 'Unknown')}"


class SlackWSGI:
    def __init__(self, app: App, store: Store, settings: Settings):
        self.app = app
        self.store = store
        self.settings = settings
        self.metrics = metrics_app(store, settings)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path == HEALTH_PATH:
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, b'{"error": "method not allowed"}')
            return self._health(start_response, method == "HEAD")
        if path == METRICS_PATH:
            if method not in ("GET", "HEAD"):
                return _reply(start_response, 405, b'{"error": "method not allowed"}')
            return self.metrics(environ, start_response)
        if path == EVENTS_PATH:
            if method != "POST":
                return _reply(start_response, 405, b'{"error": "method not allowed"}')
            return self._slack(environ, start_response)
        return _reply(start_response, 404, b'{"error": "not found"}')

    def _health(self, start_response: Callable, head_only: bool) -> Iterable[bytes]:
        try:
            report = health(self.store, self.settings)
            status, body = (200 if report.ok else 503), orjson.dumps(report.as_dict())
        except Exception as exc:  # the store is unreachable: unhealthy, said without a traceback
            log.warning("health check failed: %s", exc)
            status, body = 503, orjson.dumps({"ok": False, "error": f"store unreachable: {type(exc).__name__}"})
        return _reply(start_response, status, b"" if head_only else body)

    def _slack(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _reply(start_response, 400, b'{"error": "bad content length"}')
        if length > MAX_BODY_BYTES:
            return _reply(start_response, 413, b'{"error": "payload too large"}')
        body = environ["wsgi.input"].read(length).decode("utf-8", errors="replace") if length else ""
        headers = _headers(environ)
        # Nothing of an unsigned body is parsed: it can be anything (150,000 nested brackets made the JSON
        # parser raise RecursionError, a 500 and a traceback every time). Bolt checks the signature again.
        if not self._signed(body, headers):
            log.info("refused a request without a valid Slack signature")
            return _reply(start_response, 401, b'{"error": "invalid signature"}')
        request, problem = _bolt_request(body, environ.get("QUERY_STRING", ""), headers)
        if request is None:
            log.warning("refused a signed request whose payload is not a Slack payload: %s", problem)
            return _reply(start_response, 400, b'{"error": "malformed payload"}')
        response = self.app.dispatch(request)
        out_headers = [(name, value) for name, values in response.headers.items() for value in values]
        start_response(_status_line(response.status), out_headers)
        return [response.body.encode() if isinstance(response.body, str) else response.body]

    def _signed(self, body: str, headers: dict) -> bool:
        secret = self.settings.slack_signing_secret
        return secret is not None and SignatureVerifier(secret.get_secret_value()).is_valid(
            body, headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature"))


def _headers(environ: dict) -> dict[str, str]:
    """The request's headers, named as Bolt names them (lower case, with dashes)."""
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _bolt_request(body: str, query: str, headers: dict) -> tuple[BoltRequest | None, str]:
    """The request as Bolt reads it, or None and why it is not a Slack payload."""
    try:
        # Bolt parses the body here and reads its context (user, team, channel…) out of it.
        request = BoltRequest(body=body, query=query, headers=headers)
    except (ValueError, RecursionError, TypeError, AttributeError, LookupError) as error:
        return None, f"unreadable ({type(error).__name__})"
    problem = payloads.problem(request.body)
    return (None, problem) if problem else (request, "")


def _reply(start_response: Callable, status: int, body: bytes) -> Iterable[bytes]:
    start_response(_status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def create_wsgi_app(settings: Settings, store: Store, app: App | None = None) -> SlackWSGI:
    settings.require("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    return SlackWSGI(app or build_app(settings, store), store, settings)


def server_options(port: int) -> dict:
    """waitress's settings for `sesguard serve`: see REQUEST_THREADS and the two after it."""
    return {
        "listen": f"0.0.0.0:{port}",
        "threads": REQUEST_THREADS,
        "channel_timeout": QUIET_CONNECTION_SECONDS,
        "cleanup_interval": 1,  # how often quiet connections are looked for: the bound holds to the second
        "connection_limit": OPEN_CONNECTIONS,
        "asyncore_use_poll": True,  # select() cannot watch more than 1,024 sockets
        "max_request_body_size": MAX_BODY_BYTES,  # refused with 413 before it is buffered
    }


def serve(port: int | None = None) -> int:
    """`sesguard serve`: the WSGI app under waitress, until SIGTERM (or Ctrl-C); exit 0."""
    from waitress import create_server

    settings, store = start("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")
    server = create_server(create_wsgi_app(settings, store), **server_options(settings.port if port is None else port))
    interrupt_on_sigterm()  # a platform stops a process with SIGTERM
    # The port actually bound (with `--port 0`, the one the system chose): a supervisor or a test reads it here.
    log.info("listening on http://%s:%s", server.effective_host, server.effective_port)
    server.run()
    return 0
