"""A small Slack Web API over real HTTP, for the tests: the app reaches it through `SLACK_API_URL`.

It keeps what Slack would keep (messages with their metadata and threads, DMs, modals) and records
every call with its parameters, so that tests assert on what crossed the wire. Faults are injected per
method: `429` with `Retry-After`, `500`, a dropped connection, `lost_answer` (the call is carried out,
then the connection drops before the answer: the case that makes a naive retry post twice), and any
other name is Slack's error answer with that code (`invalid_auth`, `token_revoked`, `invalid_blocks`, …).
It also serves `response_url`s, which slash commands and buttons answer through.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JSON_PARAMS = ("blocks", "metadata", "view", "attachments")
# Faults of the connection rather than answers of Slack's.
TRANSPORT_FAULTS = ("ratelimited", "server_error", "drop", "lost_answer")


@dataclass
class Fault:
    method: str
    kind: str  # "ratelimited" | "server_error" | "drop" | "lost_answer" | a Slack error code
    times: int = 1
    retry_after: int = 1


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    token: str | None
    fault: str | None = None
    at: float = field(default_factory=time.time)  # arrival (time.time()), for pacing and back-off checks


@dataclass
class Message:
    channel: str
    ts: str
    text: str = ""
    blocks: list = field(default_factory=list)
    metadata: dict | None = None
    thread_ts: str | None = None
    user: str = ""


class FakeSlack:
    def __init__(self, token: str = "xoxb-test-token", bot_user_id: str = "UBOTSESG"):
        self.token = token
        self.bot_user_id = bot_user_id
        self.calls: list[ApiCall] = []
        self.responses: list[tuple[str, dict]] = []  # (response_url name, body) posted to response URLs
        self.messages: list[Message] = []
        self.users_by_email: dict[str, str] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._last_ts = 0.0
        self._views = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-slack", daemon=True)

    # ── life cycle ──────────────────────────────────────────────────────────────────────────────

    def __enter__(self) -> "FakeSlack":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base}/response/{name}"

    # ── test helpers ────────────────────────────────────────────────────────────────────────────

    def fail(self, method: str, kind: str, times: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(method, kind, times, retry_after))

    def calls_to(self, method: str, answered_only: bool = False) -> list[dict]:
        with self._lock:
            return [c.params for c in self.calls if c.method == method and not (answered_only and c.fault)]

    def methods(self) -> list[str]:
        with self._lock:
            return [c.method for c in self.calls]

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel, oldest first."""
        with self._lock:
            return [m for m in self.messages if m.channel == channel and m.thread_ts in (None, m.ts)]

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.channel == channel and m.thread_ts == thread_ts and m.ts != thread_ts]

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            return next(m for m in self.messages if m.channel == channel and m.ts == ts)

    def all_outgoing_text(self) -> list[str]:
        """Every text and block Slack was asked to show: for injection checks."""
        out = []
        with self._lock:
            for call in self.calls:
                for key in ("text", "blocks", "view"):
                    if key in call.params:
                        out.append(json.dumps(call.params[key]) if not isinstance(call.params[key], str) else call.params[key])
            out += [json.dumps(body) for _, body in self.responses]
        return out

    # ── the API ─────────────────────────────────────────────────────────────────────────────────

    def _take_fault(self, method: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.method == method and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _next_ts(self) -> str:
        """Like Slack's: the posting time in seconds with six decimals, unique in the workspace."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def handle(self, method: str, params: dict) -> dict:
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self._lock:
            return handler(params)

    def api_auth_test(self, params: dict) -> dict:
        return {"ok": True, "user_id": self.bot_user_id, "user": "sesguard", "bot_id": "BSESGUARD",
                "team_id": "T0TEAM", "team": "Test", "url": "https://test.slack.com/"}

    def api_chat_postMessage(self, params: dict) -> dict:
        if not params.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        message = Message(
            channel=params["channel"], ts=self._next_ts(), text=params.get("text", ""),
            blocks=params.get("blocks") or [], metadata=params.get("metadata"),
            thread_ts=params.get("thread_ts"), user=self.bot_user_id,
        )
        self.messages.append(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts, "user": message.user}}

    def api_chat_update(self, params: dict) -> dict:
        for message in self.messages:
            if message.channel == params.get("channel") and message.ts == params.get("ts"):
                if "text" in params:
                    message.text = params["text"]
                if "blocks" in params:
                    message.blocks = params["blocks"] or []
                if params.get("metadata"):
                    message.metadata = params["metadata"]
                return {"ok": True, "channel": message.channel, "ts": message.ts}
        return {"ok": False, "error": "message_not_found"}

    def api_chat_getPermalink(self, params: dict) -> dict:
        for message in self.messages:
            if message.channel == params.get("channel") and message.ts == params.get("message_ts"):
                return {"ok": True, "channel": message.channel,
                        "permalink": f"https://test.slack.com/archives/{message.channel}/p{message.ts.replace('.', '')}"}
        return {"ok": False, "error": "message_not_found"}

    def api_chat_postEphemeral(self, params: dict) -> dict:
        if not params.get("channel") or not params.get("user"):
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "message_ts": self._next_ts()}

    def api_conversations_history(self, params: dict) -> dict:
        channel = params.get("channel")
        with_metadata = str(params.get("include_all_metadata", "")).lower() in ("1", "true")
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or 1e12)
        found = [m for m in self.messages if m.channel == channel and m.thread_ts in (None, m.ts)
                 and oldest <= float(m.ts) <= latest]
        found.reverse()  # newest first, as Slack answers
        start = int(params.get("cursor") or 0)
        limit = int(params.get("limit") or 100)
        page = found[start:start + limit]
        more = start + limit < len(found)
        out = []
        for m in page:
            item = {"type": "message", "ts": m.ts, "text": m.text, "user": m.user, "blocks": m.blocks}
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            out.append(item)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def api_conversations_open(self, params: dict) -> dict:
        users = str(params.get("users") or "")
        if not users or "," in users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + users.lstrip("UW")}}

    def api_users_lookupByEmail(self, params: dict) -> dict:
        user_id = self.users_by_email.get(str(params.get("email", "")).lower())
        if user_id is None:
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True, "user": {"id": user_id, "profile": {"email": params["email"]}}}

    def api_usergroups_users_list(self, params: dict) -> dict:
        users = self.usergroups.get(str(params.get("usergroup")))
        if users is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(users)}

    def api_views_open(self, params: dict) -> dict:
        if not params.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        view = dict(params.get("view") or {})
        view["id"] = f"V{next(self._views):08d}"
        return {"ok": True, "view": view}

    def api_views_update(self, params: dict) -> dict:
        if not params.get("view_id") and not params.get("external_id"):
            return {"ok": False, "error": "not_found"}
        return {"ok": True, "view": dict(params.get("view") or {}, id=params.get("view_id"))}

    # ── HTTP ────────────────────────────────────────────────────────────────────────────────────

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _params(self) -> dict:
                url = urlsplit(self.path)
                params: dict[str, Any] = dict(parse_qsl(url.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if raw:
                    if "json" in (self.headers.get("Content-Type") or ""):
                        params.update(json.loads(raw))
                    else:
                        params.update(parse_qsl(raw.decode(), keep_blank_values=True))
                for key in JSON_PARAMS:
                    if isinstance(params.get(key), str) and params[key][:1] in "[{":
                        params[key] = json.loads(params[key])
                return params

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.close()

            def _serve(self) -> None:
                path = urlsplit(self.path).path
                params = self._params()
                if path.startswith("/response/"):
                    with fake._lock:
                        fake.responses.append((path.rsplit("/", 1)[1], params))
                    self._send(200, {"ok": True})
                    return
                if not path.startswith("/api/"):
                    self._send(404, {"ok": False, "error": "not_found"})
                    return
                method = path[len("/api/"):]
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else params.get("token")
                fault = fake._take_fault(method)
                with fake._lock:
                    fake.calls.append(ApiCall(method, params, token, fault.kind if fault else None))
                if fault is not None and fault.kind == "ratelimited":
                    self._send(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)})
                    return
                if fault is not None and fault.kind == "server_error":
                    self._send(500, {"ok": False, "error": "fatal_error"})
                    return
                if fault is not None and fault.kind == "drop":
                    self._drop()
                    return
                if token != fake.token:
                    self._send(200, {"ok": False, "error": "invalid_auth"})
                    return
                if fault is not None and fault.kind not in TRANSPORT_FAULTS:  # Slack refusing the call
                    self._send(200, {"ok": False, "error": fault.kind})
                    return
                answer = fake.handle(method, params)
                if fault is not None and fault.kind == "lost_answer":
                    self._drop()
                    return
                self._send(200, answer)

        return Handler
