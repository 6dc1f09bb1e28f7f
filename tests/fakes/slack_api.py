"""A small Slack Web API over real HTTP, for the tests: the app reaches it through `SLACK_API_URL`.

It keeps what Slack would keep (channels and their members, messages with their metadata and threads,
DMs, modals, trigger IDs) and records every call with its parameters and its answer, so that tests
assert on what crossed the wire. It keeps Slack's rules, strict by default:

- the token's scopes are those `manifest.yml` asks for (`missing_scope` otherwise);
- the bot reads and writes only in channels it is a member of (`not_in_channel`), an ephemeral message
  goes only to a member of the channel (`user_not_in_channel`), only the bot's own messages can be updated;
- messages, response-URL answers and modals must keep Block Kit's limits (`tests/fakes/block_kit.py`):
  anything beyond them is refused as Slack refuses it, and leaving the stand-in fails the test that sent
  it, unless the test said by name that it expects refusals (`expect_block_kit_refusals=True`);
- a trigger ID lives three seconds and opens one view;
- `conversations.history` takes `limit` 1 to 999 (default 100), may answer fewer, and its `oldest` and
  `latest` bounds are exclusive unless `inclusive` is set; `conversations.replies` takes 1 to 1,000.

Faults are injected per method: `429` with `Retry-After`, `500`, a dropped connection, `invalid_auth`,
`lost_answer` (the call is carried out, then the connection drops before the answer: the case that
makes a naive retry post twice), and any other Slack error code (`invalid_blocks`, `msg_too_long`: Slack
refuses that one call with `{"ok": false, "error": …}`). It also serves `response_url`s, which slash commands
and buttons answer through.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from tests.fakes import block_kit

JSON_PARAMS = ("blocks", "metadata", "view", "attachments")
MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
# https://docs.slack.dev/interactivity/handling-user-interaction: "trigger_id … expires in three seconds".
TRIGGER_SECONDS = 3.0
# https://docs.slack.dev/reference/methods/conversations.history: limit defaults to 100, maximum 999, and
# "fewer than the requested number of items may be returned": this stand-in never answers more than 100.
HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, HISTORY_PAGE = 100, 999, 100
# conversations.replies: at most 1,000 messages a page (and that many when no limit is given)
REPLIES_MAX_LIMIT = 1000
# views.publish: "view_too_large: the provided view is greater than 250kb"
VIEW_MAX_BYTES = 250_000


def manifest_scopes() -> frozenset[str]:
    """The bot scopes the app asks for at installation: what its token is granted."""
    return frozenset(yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"])


def manifest_home_tab() -> bool:
    """Whether the app's Home tab is enabled (`features.app_home.home_tab_enabled`): views.publish of a home
    view answers `not_enabled` otherwise."""
    return bool(((yaml.safe_load(MANIFEST.read_text()).get("features") or {}).get("app_home") or {})
                .get("home_tab_enabled"))


@dataclass
class Fault:
    method: str
    kind: str  # "ratelimited" | "server_error" | "drop" | "invalid_auth" | "lost_answer" | a Slack error code
    times: int = 1
    retry_after: int = 1


@dataclass
class ApiCall:
    method: str
    params: dict[str, Any]
    token: str | None
    fault: str | None = None
    at: float = field(default_factory=time.time)  # arrival (time.time()), for pacing and back-off checks
    error: str | None = None  # what Slack answered when it refused the call (None: ok)


@dataclass
class Message:
    channel: str
    ts: str
    text: str = ""
    blocks: list = field(default_factory=list)
    metadata: dict | None = None
    thread_ts: str | None = None
    user: str = ""


@dataclass
class Channel:
    id: str
    kind: str  # "public" | "private" | "im"
    members: set[str]


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


class FakeSlack:
    def __init__(self, token: str = "xoxb-test-token", bot_user_id: str = "UBOTSESG", *,
                 channels: Mapping[str, Iterable[str]] | None = None, scopes: Iterable[str] | None = None,
                 expect_block_kit_refusals: bool = False, clock: Callable[[], float] = time.monotonic):
        self.token = token
        self.bot_user_id = bot_user_id
        self.scopes = manifest_scopes() if scopes is None else frozenset(scopes)
        self.expect_block_kit_refusals = expect_block_kit_refusals
        self.clock = clock  # trigger IDs age on it
        self.calls: list[ApiCall] = []
        self.responses: list[tuple[str, dict]] = []  # (response_url name, body) accepted at response URLs
        self.refused: list[tuple[str, list[str]]] = []  # (method or response URL, problems): Block Kit refusals
        self.messages: list[Message] = []
        self.channels: dict[str, Channel] = {}
        self.users_by_email: dict[str, str] = {}
        self.usergroups: dict[str, list[str]] = {}
        self.faults: list[Fault] = []
        self.views: dict[str, dict] = {}
        self.home_tab_enabled = manifest_home_tab()
        self.home_views: dict[str, dict] = {}  # user ID → the Home tab published for them
        self.users: set[str] = set()  # people of the workspace beyond channel members and e-mail look-ups
        self._triggers: dict[str, tuple[float, bool]] = {}  # trigger ID → (issued at, used)
        self._lock = threading.RLock()
        self._last_ts = 0.0
        self._view_ids = itertools.count(1)
        for channel, members in (channels or {}).items():
            self.add_channel(channel, *members)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-slack", daemon=True)

    # ── life cycle ──────────────────────────────────────────────────────────────────────────────

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if (not exc or exc[0] is None) and not self.expect_block_kit_refusals:
            assert not self.refused, f"Slack refused what the app sent (Block Kit limits): {self.refused[:5]}"

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.base}/response/{name}"

    # ── the workspace ───────────────────────────────────────────────────────────────────────────

    def add_channel(self, channel: str, *members: str, private: bool = False, bot: bool = True) -> None:
        """A channel with these people in it (and the bot, once invited, as the README's set-up says)."""
        with self._lock:
            people = set(members) | ({self.bot_user_id} if bot else set())
            self.channels[channel] = Channel(channel, "private" if private else "public", people)

    def add_user(self, *user_ids: str) -> None:
        with self._lock:
            self.users.update(user_ids)

    def knows_user(self, user_id: Any) -> bool:
        """A person of this workspace: a member of a channel, someone `users.lookupByEmail` finds, in a
        user group, or added by the test."""
        with self._lock:
            return isinstance(user_id, str) and user_id != self.bot_user_id and (
                user_id in self.users or user_id in self.users_by_email.values()
                or any(user_id in channel.members for channel in self.channels.values())
                or any(user_id in members for members in self.usergroups.values()))

    def invite_bot(self, channel: str) -> None:
        with self._lock:
            self.channels[channel].members.add(self.bot_user_id)

    def trigger_id(self) -> str:
        """A trigger ID as Slack puts one in an interaction payload; it lives TRIGGER_SECONDS."""
        trigger = f"{int(time.time())}.{secrets.randbelow(10 ** 9)}.{secrets.token_hex(16)}"
        with self._lock:
            self._triggers[trigger] = (self.clock(), False)
        return trigger

    # ── test helpers ────────────────────────────────────────────────────────────────────────────

    def fail(self, method: str, kind: str, times: int = 1, retry_after: int = 1) -> None:
        with self._lock:
            self.faults.append(Fault(method, kind, times, retry_after))

    def calls_to(self, method: str, answered_only: bool = False, ok_only: bool = False) -> list[dict]:
        """Parameters of each call of `method`; `answered_only`: not hit by an injected fault; `ok_only`:
        carried out (neither a fault nor a refusal)."""
        with self._lock:
            return [c.params for c in self.calls if c.method == method and not ((answered_only or ok_only) and c.fault)
                    and not (ok_only and c.error)]

    def errors_of(self, method: str) -> list[str | None]:
        """What Slack answered each call of `method`: None for ok, else the error code."""
        with self._lock:
            return [c.fault or c.error for c in self.calls if c.method == method]

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
                        value = call.params[key]
                        out.append(json.dumps(value) if not isinstance(value, str) else value)
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
        """Slack's answer to an authenticated call: refused by a rule, or carried out."""
        handler = getattr(self, "api_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        with self._lock:
            return self._missing_scope(method, params) or self._block_kit(method, params) or handler(params)

    # ── the rules every method shares ───────────────────────────────────────────────────────────

    def _needed_scope(self, method: str, params: dict) -> str | None:
        """Each method's scope, from its reference page on docs.slack.dev ("Scopes: Bot token")."""
        if method in ("conversations.history", "conversations.replies"):  # the *:history scope of the kind read
            channel = self.channels.get(str(params.get("channel")))
            kind = channel.kind if channel else "public"
            return {"public": "channels:history", "private": "groups:history", "im": "im:history"}[kind]
        return {
            "chat.postMessage": "chat:write", "chat.update": "chat:write", "chat.postEphemeral": "chat:write",
            "conversations.open": "im:write", "users.lookupByEmail": "users:read.email",
            "usergroups.users.list": "usergroups:read",
        }.get(method)

    def _missing_scope(self, method: str, params: dict) -> dict | None:
        """A token without the method's scope gets `missing_scope`, naming what was needed and provided."""
        needed = self._needed_scope(method, params)
        if needed is None or needed in self.scopes:
            return None
        return {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(sorted(self.scopes))}

    def _block_kit(self, method: str, params: dict) -> dict | None:
        """A message or view beyond Block Kit's limits is refused, and remembered for the test's end."""
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            problems = block_kit.message_problems(params)
            error = "msg_too_long" if block_kit.message_text(params.get("text")) else "invalid_blocks"
        elif method in ("views.open", "views.update", "views.push", "views.publish"):
            problems, error = block_kit.view_problems(params.get("view")), "invalid_arguments"
        else:
            return None
        if not problems:
            return None
        self.refused.append((method, problems))
        return {"ok": False, "error": error, "response_metadata": {"messages": problems[:5]}}

    def _member_channel(self, channel_id: Any) -> tuple[Channel | None, dict | None]:
        """The channel, if it exists and the bot is in it: else `channel_not_found` or `not_in_channel`."""
        channel = self.channels.get(str(channel_id or ""))
        if channel is None:
            return None, {"ok": False, "error": "channel_not_found"}
        if self.bot_user_id not in channel.members:
            return None, {"ok": False, "error": "not_in_channel"}
        return channel, None

    # ── methods ─────────────────────────────────────────────────────────────────────────────────

    def api_auth_test(self, params: dict) -> dict:
        return {"ok": True, "user_id": self.bot_user_id, "user": "sesguard", "bot_id": "BSESGUARD",
                "team_id": "T0TEAM", "team": "Test", "url": "https://test.slack.com/"}

    def api_chat_postMessage(self, params: dict) -> dict:
        channel, refusal = self._member_channel(params.get("channel"))
        if refusal:
            return refusal
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        message = Message(
            channel=channel.id, ts=self._next_ts(), text=params.get("text", ""),
            blocks=params.get("blocks") or [], metadata=params.get("metadata"),
            thread_ts=params.get("thread_ts"), user=self.bot_user_id,
        )
        self.messages.append(message)
        return {"ok": True, "channel": message.channel, "ts": message.ts,
                "message": {"text": message.text, "ts": message.ts, "user": message.user}}

    def api_chat_update(self, params: dict) -> dict:
        """Only a message that exists, and only the bot's own (`cant_update_message`)."""
        _, refusal = self._member_channel(params.get("channel"))
        if refusal:
            return refusal
        for message in self.messages:
            if message.channel == params.get("channel") and message.ts == params.get("ts"):
                if message.user != self.bot_user_id:
                    return {"ok": False, "error": "cant_update_message"}
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
                permalink = f"https://test.slack.com/archives/{message.channel}/p{message.ts.replace('.', '')}"
                return {"ok": True, "channel": message.channel, "permalink": permalink}
        return {"ok": False, "error": "message_not_found"}

    def api_chat_postEphemeral(self, params: dict) -> dict:
        """Shown to one member of the channel: anyone else is `user_not_in_channel`."""
        channel, refusal = self._member_channel(params.get("channel"))
        if refusal:
            return refusal
        if params.get("user") not in channel.members:
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": self._next_ts()}

    def api_conversations_history(self, params: dict) -> dict:
        channel, refusal = self._member_channel(params.get("channel"))
        if refusal:
            return refusal
        try:
            limit = int(params.get("limit") or HISTORY_DEFAULT_LIMIT)
        except ValueError:
            limit = 0
        if not 1 <= limit <= HISTORY_MAX_LIMIT:
            return {"ok": False, "error": "invalid_arguments",
                    "response_metadata": {"messages": [f"limit must be 1 to {HISTORY_MAX_LIMIT}"]}}
        page_size = min(limit, HISTORY_PAGE)
        found = [m for m in self.messages if m.channel == channel.id and m.thread_ts in (None, m.ts)
                 and _between(float(m.ts), params)]
        found.reverse()  # newest first, as Slack answers
        start = int(params.get("cursor") or 0)
        page = found[start:start + page_size]
        more = start + page_size < len(found)
        out = []
        for m in page:
            item = {"type": "message", "ts": m.ts, "text": m.text, "user": m.user, "blocks": m.blocks}
            if _truthy(params.get("include_all_metadata")) and m.metadata:
                item["metadata"] = m.metadata
            out.append(item)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(start + page_size) if more else ""}}

    def api_conversations_replies(self, params: dict) -> dict:
        """A thread, its parent first, then the replies oldest first, with metadata when asked."""
        channel, refusal = self._member_channel(params.get("channel"))
        if refusal:
            return refusal
        try:
            limit = int(params.get("limit") or REPLIES_MAX_LIMIT)
        except ValueError:
            limit = 0
        if not 1 <= limit <= REPLIES_MAX_LIMIT:
            return {"ok": False, "error": "invalid_arguments",
                    "response_metadata": {"messages": [f"limit must be 1 to {REPLIES_MAX_LIMIT}"]}}
        thread = str(params.get("ts") or "")
        found = [m for m in self.messages if m.channel == channel.id and (m.ts == thread or m.thread_ts == thread)]
        if not found:
            return {"ok": False, "error": "thread_not_found"}
        start = int(params.get("cursor") or 0)
        page = found[start:start + limit]
        more = start + limit < len(found)
        out = []
        for m in page:
            item = {"type": "message", "ts": m.ts, "thread_ts": thread, "text": m.text, "user": m.user}
            if _truthy(params.get("include_all_metadata")) and m.metadata:
                item["metadata"] = m.metadata
            out.append(item)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def api_conversations_open(self, params: dict) -> dict:
        """A DM with one person: the bot and that person are its members."""
        users = str(params.get("users") or "")
        if not users or "," in users:
            return {"ok": False, "error": "user_not_found"}
        dm = "D" + users.lstrip("UW")
        self.channels.setdefault(dm, Channel(dm, "im", {self.bot_user_id, users}))
        return {"ok": True, "channel": {"id": dm}}

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

    def _exchange_trigger(self, trigger: Any) -> str | None:
        """views.open: a trigger ID this workspace issued, within three seconds, used once."""
        issued = self._triggers.get(str(trigger or ""))
        if issued is None:
            return "invalid_trigger_id"
        at, used = issued
        if used:
            return "exchanged_trigger_id"
        if self.clock() - at > TRIGGER_SECONDS:
            return "expired_trigger_id"
        self._triggers[str(trigger)] = (at, True)
        return None

    def api_views_open(self, params: dict) -> dict:
        error = self._exchange_trigger(params.get("trigger_id"))
        if error:
            return {"ok": False, "error": error}
        view = dict(params.get("view") or {}, id=f"V{next(self._view_ids):08d}")
        self.views[view["id"]] = view
        return {"ok": True, "view": view}

    def api_views_publish(self, params: dict) -> dict:
        """The Home tab of one user (https://docs.slack.dev/reference/methods/views.publish: no scope needed;
        `user_id` must be a user of the workspace, `invalid_arguments` "invalid `user_id`" otherwise; the view
        must be of type `home` and the app's Home tab enabled, `not_enabled` otherwise; at most 250 kB)."""
        view = params.get("view")
        if not self.knows_user(params.get("user_id")):
            return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": ["invalid `user_id`"]}}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments",
                    "response_metadata": {"messages": ["views.publish takes a view of type home"]}}
        if not self.home_tab_enabled:
            return {"ok": False, "error": "not_enabled"}
        if len(json.dumps(view)) > VIEW_MAX_BYTES:
            return {"ok": False, "error": "view_too_large"}
        view_id = self.home_views.get(params["user_id"], {}).get("id") or f"V{next(self._view_ids):08d}"
        published = dict(view, id=view_id)
        self.home_views[params["user_id"]] = published
        return {"ok": True, "view": published}

    def api_views_update(self, params: dict) -> dict:
        if str(params.get("view_id")) not in self.views:
            return {"ok": False, "error": "not_found"}
        view = dict(params.get("view") or {}, id=params["view_id"])
        self.views[view["id"]] = view
        return {"ok": True, "view": view}

    # ── response URLs ───────────────────────────────────────────────────────────────────────────

    def respond(self, name: str, body: dict) -> tuple[int, str]:
        """A response URL takes a message like chat.postMessage does; beyond Block Kit's limits it is
        refused (400 `invalid_blocks`, as incoming webhooks answer) and nothing is shown."""
        problems = block_kit.message_problems(body)
        with self._lock:
            if problems:
                self.refused.append((f"response_url {name}", problems))
                return 400, "invalid_blocks"
            self.responses.append((name, body))
        return 200, "ok"

    # ── HTTP ────────────────────────────────────────────────────────────────────────────────────

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes on a kept-alive connection: with Nagle's algorithm the body
            # waits for the client's delayed ACK of the headers (40 ms a request on Linux), which no real API adds.
            disable_nagle_algorithm = True

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

            def _send(self, status: int, body: dict | str, headers: dict | None = None) -> None:
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8" if isinstance(body, dict)
                                 else "text/plain; charset=utf-8")
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
                    self._send(*fake.respond(path.rsplit("/", 1)[1], params))
                    return
                if not path.startswith("/api/"):
                    self._send(404, {"ok": False, "error": "not_found"})
                    return
                method = path[len("/api/"):]
                auth = self.headers.get("Authorization") or ""
                token = auth[len("Bearer "):] if auth.startswith("Bearer ") else params.get("token")
                fault = fake._take_fault(method)
                call = ApiCall(method, params, token, fault.kind if fault else None)
                with fake._lock:
                    fake.calls.append(call)
                if fault is not None and fault.kind == "ratelimited":
                    self._send(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)})
                    return
                if fault is not None and fault.kind == "server_error":
                    self._send(500, {"ok": False, "error": "fatal_error"})
                    return
                if fault is not None and fault.kind == "drop":
                    self._drop()
                    return
                if not token:
                    answer = {"ok": False, "error": "not_authed"}
                elif fault is not None and fault.kind == "invalid_auth" or token != fake.token:
                    answer = {"ok": False, "error": "invalid_auth"}
                elif fault is not None and fault.kind != "lost_answer":  # Slack refuses this one call
                    answer = {"ok": False, "error": fault.kind}
                else:
                    answer = fake.handle(method, params)
                call.error = None if answer.get("ok") else answer.get("error")
                if fault is not None and fault.kind == "lost_answer":
                    self._drop()
                    return
                self._send(200, answer)

        return Handler


def _between(ts: float, params: dict) -> bool:
    """conversations.history's window: after `oldest` (default 0) and before `latest` (default now); the
    bounds themselves only with `inclusive` ("Include messages with oldest or latest timestamps")."""
    oldest = float(params.get("oldest") or 0)
    latest = float(params.get("latest") or "inf")
    if _truthy(params.get("inclusive")):
        return oldest <= ts <= latest
    return oldest < ts < latest
