"""Requests as Slack sends them: form or JSON bodies, signed with v0 HMAC-SHA256 over `v0:{timestamp}:{body}`.

https://api.slack.com/authentication/verifying-requests-from-slack
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode


def signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, content_type: str, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature(secret, stamp, body),
    }


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body) if self.body else {}


# Long enough for any answer; a test that measures a deadline passes a shorter one, to fail in time.
TIMEOUT_SECONDS = 30


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = TIMEOUT_SECONDS) -> Reply:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read())


def get(url: str, timeout: float = TIMEOUT_SECONDS) -> Reply:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.read())


class SlackSender:
    """Sends events, slash commands and interactivity payloads to the app, signed with `secret`."""

    def __init__(self, url: str, secret: str):
        self.url = url
        self.secret = secret

    def send(self, body: bytes, content_type: str, timestamp: int | None = None, secret: str | None = None,
             timeout: float = TIMEOUT_SECONDS) -> Reply:
        return post(self.url, body, signed_headers(secret or self.secret, body, content_type, timestamp), timeout)

    def event(self, payload: dict, **kw) -> Reply:
        return self.send(json.dumps(payload).encode(), "application/json", **kw)

    def interaction(self, payload: dict, **kw) -> Reply:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return self.send(body, "application/x-www-form-urlencoded", **kw)

    def command(self, text: str, user_id: str, response_url: str, **kw) -> Reply:
        form = {
            "token": "legacy-verification-token-unused", "team_id": "T0TEAM", "team_domain": "test",
            "channel_id": "C0ALERTS", "channel_name": "security-alerts", "user_id": user_id,
            "user_name": user_id.lower(), "command": "/sesguard", "text": text,
            "api_app_id": "A0SESGUARD", "response_url": response_url,
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }
        return self.send(urlencode(form).encode(), "application/x-www-form-urlencoded", **kw)
