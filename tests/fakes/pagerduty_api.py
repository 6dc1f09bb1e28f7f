"""A local PagerDuty Events API v2 (`POST /v2/enqueue`) over real HTTP, keeping PagerDuty's documented rules.

`routing_key` of 32 characters; `event_action` one of trigger, acknowledge, resolve; `dedup_key` at most
255 characters and required to acknowledge or resolve; a trigger needs a `payload` with `summary` (at
most 1,024 characters), `source` and `severity` (critical, error, warning or info). An event it takes is
answered 202 `{"status": "success", "message": "Event processed", "dedup_key": …}`; an invalid one 400
`{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`. It also keeps the
alerts as PagerDuty would (a trigger opens one per dedup_key or adds to the open one; a resolve closes
it), so that tests can count incidents, and answers 429, 500, a dropped connection, or a lost answer
(the event taken, then the connection dropped) when told to.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
PATH = "/v2/enqueue"


@dataclass
class Received:
    at: float
    event: dict | None  # None: the body was not JSON
    status: int
    fault: str | None = None


@dataclass
class Alert:
    dedup_key: str
    triggers: list[dict] = field(default_factory=list)
    resolved: bool = False


@dataclass
class Held:
    """A request the stand-in holds: `reached` once it arrived, answered once the test sets `release`."""

    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class FakePagerDuty:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.alerts: list[Alert] = []
        self._faults: list[tuple[str, int, float | None]] = []  # (kind, times, retry_after)
        self._holds: list[Held] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-pagerduty",
                                        daemon=True)

    def __enter__(self) -> FakePagerDuty:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{PATH}"

    # ── test helpers ────────────────────────────────────────────────────────────────────────────

    def hold(self) -> Held:
        """The next event is held before it is answered (and taken) until the test releases it: a request in
        flight for as long as the test needs."""
        held = Held()
        with self._lock:
            self._holds.append(held)
        return held

    def _next_hold(self) -> Held | None:
        with self._lock:
            return self._holds.pop(0) if self._holds else None

    def fail(self, kind: str, times: int = 1, retry_after: float | None = None) -> None:
        """The next `times` events get `kind`: "throttle" (429), "server_error" (500), "drop" (no answer,
        event not taken) or "lost_answer" (event taken, then the connection dropped)."""
        with self._lock:
            self._faults.append((kind, times, retry_after))

    def accepted(self) -> list[dict]:
        """The events taken (202, or taken before a lost answer), in arrival order."""
        with self._lock:
            return [r.event for r in self.received if r.status == 202]

    def incidents(self) -> list[Alert]:
        with self._lock:
            return list(self.alerts)

    # ── the rules ───────────────────────────────────────────────────────────────────────────────

    @staticmethod
    def problems(event: object) -> list[str]:
        """Why PagerDuty would refuse the event (empty: it is valid)."""
        if not isinstance(event, dict):
            return ["Event object is not a JSON object"]
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            errors.append("'routing_key' must be a 32 character string")
        action = event.get("event_action")
        if action not in EVENT_ACTIONS:
            errors.append("'event_action' is invalid (must be one of trigger, acknowledge, resolve)")
        dedup_key = event.get("dedup_key")
        if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup_key:
            errors.append("'dedup_key' is required for acknowledge and resolve events")
        if action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                return errors + ["'payload' is missing or not an object"]
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary:
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > 1024:
                errors.append("'payload.summary' must be at most 1024 characters")
            if not isinstance(payload.get("source"), str) or not payload["source"]:
                errors.append("'payload.source' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' must be one of critical, error, warning, info")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                errors.append("'payload.custom_details' must be an object")
        return errors

    def _take(self, event: dict) -> None:
        """Apply a valid event to the alerts, as PagerDuty does."""
        dedup_key = event.get("dedup_key")
        open_alert = next((a for a in self.alerts if a.dedup_key == dedup_key and not a.resolved), None)
        if event["event_action"] == "trigger":
            if open_alert is None:
                open_alert = Alert(dedup_key)
                self.alerts.append(open_alert)
            open_alert.triggers.append(event)
        elif event["event_action"] == "resolve" and open_alert is not None:
            open_alert.resolved = True  # a resolve without an open alert is dropped

    def _next_fault(self) -> tuple[str, float | None] | None:
        for index, (kind, times, retry_after) in enumerate(self._faults):
            if times > 0:
                self._faults[index] = (kind, times - 1, retry_after)
                return kind, retry_after
        return None

    def _answer(self, raw: bytes) -> tuple[int, dict, str | None, float | None]:
        with self._lock:
            fault = self._next_fault()
            kind, retry_after = fault if fault else (None, None)
            try:
                event = json.loads(raw)
            except ValueError:
                event = None
            if kind in ("throttle", "server_error", "drop"):
                status = {"throttle": 429, "server_error": 500, "drop": 0}[kind]
                self.received.append(Received(time.time(), event, status, kind))
                body = {"status": "throttle event", "message": "Requests for this service are arriving too quickly."
                        } if kind == "throttle" else {"status": "error", "message": "Internal server error"}
                return status, body, kind, retry_after
            errors = self.problems(event) if event is not None else ["Event object is not valid JSON"]
            if errors:
                self.received.append(Received(time.time(), event, 400, kind))
                answer = {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
                return 400, answer, kind, None
            self._take(event)
            self.received.append(Received(time.time(), event, 202, kind))
            return 202, {"status": "success", "message": "Event processed",
                         "dedup_key": event.get("dedup_key")}, kind, None

    # ── HTTP ────────────────────────────────────────────────────────────────────────────────────

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes on a kept-alive connection: with Nagle's algorithm the body
            # waits for the client's delayed ACK of the headers (40 ms a request on Linux), which no real API adds.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != PATH:
                    self._send(404, {"status": "not found"})
                    return
                held = fake._next_hold()
                if held is not None:
                    held.reached.set()
                    held.release.wait(60)
                status, body, fault, retry_after = fake._answer(raw)
                if fault in ("drop", "lost_answer"):
                    self.close_connection = True
                    self.connection.close()
                    return
                headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
                self._send(status, body, headers)

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
