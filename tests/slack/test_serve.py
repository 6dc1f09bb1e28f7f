"""`sesguard serve` as the deployment runs it: a process on a port, signed requests over HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from bot.slack.web import MAX_BODY_BYTES
from tests.fakes.slack_api import FakeSlack
from tests.support.slack_harness import SECRET, TOKEN
from tests.support.slack_signing import SlackSender, get

pytestmark = pytest.mark.processes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STARTUP_PATIENCE_SECONDS = 60  # a bound on waiting for the process, not a measurement


_LISTENING = re.compile(r"listening on http://[^:\s]+:(\d+)$", re.MULTILINE)


@pytest.fixture
def served(tmp_path):
    """`sesguard serve --port 0` (PORT=1 set too: the flag wins): the port the system chose, read from the
    server's own "listening on" line, never one guessed free beforehand."""
    with FakeSlack(token=TOKEN) as slack:
        env = dict(os.environ, SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=slack.api_url,
                   SLACK_ALERT_CHANNEL="C0ALERTS", SLACK_TRIAGERS="UTRIAGER1",
                   DATABASE_URL=f"sqlite:///{tmp_path / 'sesguard.db'}", PORT="1")
        log = tmp_path / "serve.log"
        with open(log, "wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", "0"], cwd=tmp_path, env=env,
                                       stdout=out, stderr=subprocess.STDOUT)
        give_up = time.monotonic() + STARTUP_PATIENCE_SECONDS
        base = None
        while True:
            if base is None:
                ports = _LISTENING.findall(log.read_text(errors="replace"))
                base = f"http://127.0.0.1:{ports[-1]}" if ports else None
            try:
                if base is not None and get(f"{base}/healthz").status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > give_up:
                process.kill()
                process.wait()
                pytest.fail("sesguard serve did not start:\n" + log.read_text(errors="replace"))
            time.sleep(0.05)
        yield base, process, slack, log
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_answers_health_url_verification_and_refuses_forgeries(served):
    base, process, slack, log = served
    health = get(f"{base}/healthz")
    assert health.status == 200 and health.json()["ok"] is True and health.json()["pending_alerts"] == 0
    sender = SlackSender(f"{base}/slack/events", SECRET)
    challenge = sender.event({"type": "url_verification", "challenge": "c-123", "token": "t"})
    assert challenge.status == 200 and challenge.json()["challenge"] == "c-123"
    assert sender.event({"type": "url_verification", "challenge": "c-123"}, secret="forged").status == 401
    stale = int(time.time()) - 301
    assert sender.event({"type": "url_verification", "challenge": "c-123"}, timestamp=stale).status == 401
    help_reply = sender.command("help", "UOUTSIDER", slack.response_url("serve-help"))
    assert help_reply.status == 200
    give_up = time.monotonic() + STARTUP_PATIENCE_SECONDS
    while not any(name == "serve-help" for name, _ in slack.responses):  # answered after the ack
        assert time.monotonic() < give_up, "no answer to /sesguard help"
        time.sleep(0.05)
    answer = next(body for name, body in slack.responses if name == "serve-help")
    assert answer["response_type"] == "ephemeral" and "/sesguard history" in answer["text"]
    assert slack.calls_to("chat.postMessage") == []  # help posts nothing to a channel
    assert _status_of_a_post_announcing(base, MAX_BODY_BYTES + 1) == 413
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=STARTUP_PATIENCE_SECONDS) == 0
    output = log.read_text(errors="replace")
    assert "everyone" not in output and SECRET not in output and TOKEN not in output


def _status_of_a_post_announcing(base: str, length: int) -> int:
    """The status answered to a request head announcing a body of `length` bytes, before any of it is sent."""
    host, port = base.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=STARTUP_PATIENCE_SECONDS) as client:
        client.sendall(f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {length}\r\n\r\n".encode())
        return int(client.makefile("rb").readline().split()[1])


def test_the_procfile_runs_sesguard_serve():
    """The platform runs the server the tests run, with the same limits and time-outs."""
    with open(os.path.join(ROOT, "Procfile")) as f:
        processes = dict(line.strip().split(": ", 1) for line in f if ": " in line)
    assert processes == {"web": "sesguard serve", "worker": "sesguard worker"}


@pytest.mark.parametrize("command, missing", [("serve", "SLACK_SIGNING_SECRET"), ("socket", "SLACK_APP_TOKEN")])
def test_a_missing_secret_stops_start_up_with_one_line(tmp_path, command, missing):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env.update(SLACK_BOT_TOKEN=TOKEN, DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}")
    done = subprocess.run([sys.executable, "-m", "bot", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=STARTUP_PATIENCE_SECONDS)
    assert done.returncode == 2 and done.stderr.strip() == f"sesguard: {missing} is not set (see .env.example)"


def test_the_manifest_sets_up_what_the_app_uses():
    with open(os.path.join(ROOT, "manifest.yml")) as f:
        manifest = yaml.safe_load(f)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"chat:write", "commands", "im:write", "users:read", "users:read.email", "usergroups:read",
            "channels:history", "groups:history"} <= scopes
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == "/sesguard" and command["url"].endswith("/slack/events")
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["interactivity"]["request_url"].endswith("/slack/events")


def test_processes_starting_together_on_one_new_sqlite_file_all_migrate(tmp_path):
    """`serve` processes and the worker start at once on the default SQLite store."""
    code = (f"from bot.store.schema import migrate; from detection.store import Store; "
            f"migrate(Store('sqlite:///{tmp_path / 'shared.db'}'))")
    starts = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    errors = [(p, p.communicate(timeout=STARTUP_PATIENCE_SECONDS)[1]) for p in starts]
    assert [error for p, error in errors if p.returncode != 0] == []
