"""The Slack app under test, end to end: the WSGI app of `sesguard serve` on a local port, the Slack Web API
stand-in, signed requests, and CloudTrail records run through the real detection into the store.

Bolt acks first and finishes a listener on its executor; `Harness` gives Bolt an executor it can drain,
so that a test waits for the work a request started instead of sleeping.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.alerts.notifier import post_pending
from bot.config.settings import Settings
from bot.slack.app import build_app
from bot.slack.client import slack_client
from bot.slack.web import create_wsgi_app
from bot.store.schema import migrate
from detection.baseline import Tuning
from detection.record import to_call
from detection.scan import detect
from detection.sources.lookup import LookupSource
from detection.store import Store
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import Alert, alert
from tests.support.slack_signing import Reply, SlackSender

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"
CHANNEL = "C0ALERTS"
TRIAGER = "UTRIAGER1"
OUTSIDER = "UOUTSIDER"
ACCOUNT = "111122223333"
# The alert channel as the README's set-up leaves it: the bot invited, and the people the tests click as.
PEOPLE = (TRIAGER, "UTRIAGER2", OUTSIDER, "UMEMBER01", "UMEMBER02")
NO_LEARNING = Tuning(learning=timedelta(0), forget=timedelta(days=28), group=timedelta(minutes=60))


class DrainingExecutor(ThreadPoolExecutor):
    """A thread pool that can wait for everything submitted to it, including work submitted meanwhile."""

    def __init__(self) -> None:
        super().__init__(max_workers=8, thread_name_prefix="bolt-listener")
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = super().submit(fn, *args, **kwargs)
        with self._lock:
            self._futures.append(future)
        return future

    def drain(self) -> None:
        while True:
            with self._lock:
                waiting = [f for f in self._futures if not f.done()]
            if not waiting:
                return
            for future in waiting:
                future.result(timeout=60)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


_TEMPLATE_DIR: list[Path] = []


def migrated_sqlite(folder: Path) -> Store:
    """A fresh SQLite store in `folder`, copied from one migrated once per test session (migrating takes longer)."""
    if not _TEMPLATE_DIR:
        _TEMPLATE_DIR.append(Path(tempfile.mkdtemp(prefix="sesguard-template-")))
        template = Store(f"sqlite:///{_TEMPLATE_DIR[0] / 'sesguard.db'}")
        migrate(template)
        template.engine.dispose()
    shutil.copyfile(_TEMPLATE_DIR[0] / "sesguard.db", folder / "sesguard.db")
    return Store(f"sqlite:///{folder / 'sesguard.db'}")


def settings_for(slack: FakeSlack, store: Store, **overrides) -> Settings:
    values = dict(
        slack_bot_token=TOKEN, slack_signing_secret=SECRET, slack_alert_channel=CHANNEL,
        slack_api_url=slack.api_url, slack_triagers=[TRIAGER], slack_triage_usergroup=None,
        database_url=store.url, contact_timeout_minutes=30,
        # Retries pause a hundredth of a second: the pause is no test's subject here (test_notifier's 429
        # test counts Slack's Retry-After through an injected sleep; reliability/test_slack.py sits through it).
        retry_seconds=0.01,
    )
    values.update(overrides)
    return Settings(**values)


def cloudtrail_record(event_name: str = "GetSendQuota", user: str = "alice", account: str = ACCOUNT,
                      ip: str = "203.0.113.7", user_agent: str = "aws-cli/2.15.0 Python/3.11",
                      region: str = "us-east-1", when: datetime | None = None, identity: dict | None = None,
                      **fields) -> dict:
    """A CloudTrail record of an SES enumeration call by an IAM user, fields overridable."""
    when = when or datetime.now(UTC) - timedelta(hours=1)
    record = {
        "eventVersion": "1.08",
        "userIdentity": identity or {
            "type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": f"arn:aws:iam::{account}:user/{user}",
            "accountId": account, "accessKeyId": "AKIAIOSFODNN7EXAMPLE", "userName": user,
        },
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "ses.amazonaws.com",
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": user_agent,
        "requestParameters": None,
        "responseElements": None,
        "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "recipientAccountId": account,
    }
    record.update(fields)
    return record


def sso_identity(email: str, account: str = ACCOUNT) -> dict:
    role = "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    return {
        "type": "AssumedRole", "principalId": f"AROAEXAMPLE:{email}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{email}", "accountId": account,
        "accessKeyId": "ASIAEXAMPLE",
        "sessionContext": {"sessionIssuer": {
            "type": "Role", "principalId": "AROAEXAMPLE", "accountId": account, "userName": role,
            "arn": f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/{role}"}},
    }


def store_signals(store: Store, *records: dict) -> list[str]:
    """Run records through the real detection into the store; the ids of the signals they raised."""
    signals, _ = detect([to_call(r) for r in records], NO_LEARNING, store)
    return [s.signal_id for s in signals]


class Harness:
    def __init__(self, store: Store, activity_source: LookupSource | None = None, **setting_overrides):
        """`activity_source`: the LookupEvents source investigations read through (default: the app's own)."""
        self.store, self.activity_source = store, activity_source
        self.slack = FakeSlack(token=TOKEN, channels={CHANNEL: PEOPLE})
        self.setting_overrides = setting_overrides
        self.executor = DrainingExecutor()
        self.errors: list[BaseException] = []
        self.slept: list[float] = []
        self._names = itertools.count(1)

    def __enter__(self) -> Harness:
        self.slack.__enter__()
        self.settings = settings_for(self.slack, self.store, **self.setting_overrides)
        # The app's Web API client counts its retry pauses (Retry-After included) in `slept` instead of sleeping.
        client = slack_client(self.settings, with_token=False, sleep=self.slept.append)
        self.app = build_app(self.settings, self.store, client=client, listener_executor=self.executor,
                             activity_source=self.activity_source)

        @self.app.error
        def keep(error: BaseException) -> None:  # a listener that raised fails the test that drove it
            self.errors.append(error)

        wsgi = create_wsgi_app(self.settings, self.store, self.app)
        self.server = make_server("127.0.0.1", 0, wsgi, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="sesguard-web", daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.sender = SlackSender(f"{self.base}/slack/events", SECRET)
        return self

    def __exit__(self, *exc: object) -> None:
        self.executor.drain()
        self.server.shutdown()
        self.server.server_close()
        self.executor.shutdown()
        self.slack.__exit__(*exc)

    # ── driving the app as Slack does ───────────────────────────────────────────────────────────

    def settle(self) -> None:
        """Wait until every listener started by the requests so far has finished."""
        self.executor.drain()
        assert not self.errors, f"a listener failed: {self.errors!r}"

    def post_alerts(self):
        result = post_pending(self.store, self.settings, interval=0)
        return result

    def alert(self, signal_id: str) -> Alert:
        """The stored signal and its alert's post."""
        return alert(self.store, signal_id)

    def button(self, channel: str, ts: str, action_id: str) -> dict:
        """The button as Slack shows it in the posted message (not as the test would like it to be)."""
        for block in self.slack.message(channel, ts).blocks:
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return element
        raise LookupError(f"no button {action_id} in message {ts}")

    def buttons(self, channel: str, ts: str) -> list[str]:
        return [e["action_id"] for b in self.slack.message(channel, ts).blocks
                for e in b.get("elements", []) if e.get("type") == "button"]

    def click_payload(self, action_id: str, user: str, channel: str, ts: str, value: str | None = None,
                      button: dict | None = None) -> dict:
        """What Slack sends for a click on a button of a posted message (`button` as seen earlier, for a stale one)."""
        button = button or self.button(channel, ts, action_id)
        return {
            "type": "block_actions",
            "team": {"id": "T0TEAM", "domain": "test"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
            "api_app_id": "A0SESGUARD",
            "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
            "trigger_id": self.slack.trigger_id(),
            "channel": {"id": channel, "name": "security-alerts"},
            "message": {"ts": ts, "type": "message", "user": self.slack.bot_user_id},
            "response_url": self.slack.response_url(f"action-{ts}"),
            "actions": [{
                "type": "button", "action_id": action_id, "block_id": button.get("block_id", "b"),
                "text": button["text"], "value": button["value"] if value is None else value,
                "action_ts": "1700000999.000001",
            }],
        }

    def click(self, action_id: str, user: str, channel: str, ts: str, value: str | None = None,
              button: dict | None = None, **kw) -> Reply:
        return self.sender.interaction(self.click_payload(action_id, user, channel, ts, value, button), **kw)

    def submit(self, view: dict, user: str, values: dict, **kw) -> Reply:
        """Submit a modal the app opened, with `values` as {block_id: state of its one element}."""
        payload = {
            "type": "view_submission",
            "team": {"id": "T0TEAM", "domain": "test"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0TEAM"},
            "api_app_id": "A0SESGUARD",
            "trigger_id": self.slack.trigger_id(),
            "view": {
                "id": "V0000001", "type": "modal", "callback_id": view["callback_id"],
                "private_metadata": view.get("private_metadata", ""), "blocks": view["blocks"],
                "state": {"values": {block: {block: state} for block, state in values.items()}},
                "hash": "1700000000.abc",
            },
        }
        return self.sender.interaction(payload, **kw)

    def command(self, text: str, user: str = TRIAGER, **kw) -> dict:
        """Run `/sesguard text`; the (ephemeral) answer the app sent to the response URL."""
        name = f"command-{next(self._names)}"
        reply = self.sender.command(text, user, self.slack.response_url(name), **kw)
        assert reply.status == 200, reply
        self.settle()
        answers = [body for key, body in self.slack.responses if key == name]
        assert len(answers) == 1, answers
        return answers[0]

    def opened_views(self) -> list[dict]:
        return [call["view"] for call in self.slack.calls_to("views.open")]

    def ephemerals(self, user: str, delivered: bool = True) -> list[str]:
        """The ephemeral notes sent to `user`: those Slack showed (or, `delivered=False`, every attempt)."""
        return [call["text"] for call in self.slack.calls_to("chat.postEphemeral", ok_only=delivered)
                if call.get("user") == user]


def answer_text(answer: dict) -> str:
    return answer.get("text", "") + json.dumps(answer.get("blocks", []))
