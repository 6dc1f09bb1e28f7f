"""`sesguard serve`, `worker` and `poll --once` as real processes, the way a deployment runs them, for the
reliability tests: environment in, output captured to a file (to look for secrets in it), and waits that
end on a condition, never on a guessed sleep.

The secrets are distinctive strings, so that finding one in any output is unambiguous.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import select

from bot.worker.tables import PollState
from detection.store import Store
from tests.support.alerts import Alert, alerts
from tests.support.local_aws import OWN_ACCOUNT, OWN_SECRET, LocalAws, subprocess_env
from tests.support.misbehaving_slack import MisbehavingSlack
from tests.support.slack_harness import PEOPLE
from tests.support.slack_signing import Reply, SlackSender, get

# Bounds on waiting for something that takes a second or two: they only stop a broken test from hanging.
PATIENCE_SECONDS = 60

BOT_TOKEN = "xoxb-1111-2222-SeCrEtBoTtOkEnNeVeRlOgGeD"
SIGNING_SECRET = "sIgNiNgSeCrEt0123456789abcdefNEVERLOG"
APP_TOKEN = "xapp-1-A0SESG-3333-SeCrEtApPtOkEnNeVeRlOgGeD"
AWS_SECRET = OWN_SECRET  # the CloudTrail stand-in checks every signature made with it
DB_PASSWORD = "DbPa55w0rdNeVeRlOgGeD"
SECRETS = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_APP_TOKEN": APP_TOKEN,
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "database password": DB_PASSWORD}

CHANNEL = "C0ALERTS"
TRIAGER = "UTRIAGER1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Sockets that hold a port bound without listening, for as long as the test process lives.
_HELD_PORTS: list[socket.socket] = []


def closed_port() -> int:
    """A local port nothing listens on, nor can: this process keeps it bound without listening (and without
    SO_REUSEADDR, so no one else can bind it), so connections to it are refused at once."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(held)
    return held.getsockname()[1]


def wait_for(condition: Callable[[], object], what: str, processes: Iterable[Running] = ()) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        for process in processes:
            assert process.alive, (f"{process.name} exited ({process.returncode}) while waiting for {what}:\n"
                                   f"{process.output()}")
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def sesguard_env(aws_env: dict[str, str], slack_api_url: str, database_url: str, **settings: str) -> dict[str, str]:
    """A deployment's environment: the local stand-ins, the distinctive secrets, short decimal durations."""
    return subprocess_env(aws_env, {
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_APP_TOKEN": APP_TOKEN, "SLACK_API_URL": slack_api_url, "SLACK_ALERT_CHANNEL": CHANNEL,
        "SLACK_TRIAGERS": TRIAGER, "DATABASE_URL": database_url, "AWS_REGIONS": "us-east-1",
        "SESGUARD_POLL_SECONDS": "0.3", "SESGUARD_LEASE_SECONDS": "1.5", "SESGUARD_BACKFILL_DAYS": "30",
        "SESGUARD_LEARNING_DAYS": "7", "SESGUARD_RETRY_SECONDS": "0.05",
        # The faults these tests inject are meant for the alerts: no learning report beside them (its own
        # processes' test is in tests/worker/test_scheduler.py).
        "SESGUARD_LEARNING_REPORT": "false",
    }, settings)


@dataclass
class Running:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is cleaned up."""
        self.process.kill()
        self.process.wait()

    def terminate(self) -> int:
        """SIGTERM, as a platform stops a process; its exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=PATIENCE_SECONDS)

    def stop(self) -> None:
        if self.alive:
            self.kill()


def start(args: list[str], env: dict[str, str], folder: Path, name: str) -> Running:
    log_path = folder / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "bot", *args], cwd=folder, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    return Running(name, process, log_path)


def run(args: list[str], env: dict[str, str], folder: Path) -> subprocess.CompletedProcess:
    """A command to its end: exit status, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=PATIENCE_SECONDS)


@dataclass
class Served:
    running: Running
    base: str
    sender: SlackSender

    def command(self, text: str, user: str, response_url: str, **kw) -> Reply:
        return self.sender.command(text, user, response_url, **kw)


_LISTENING = re.compile(r"listening on http://[^:\s]+:(\d+)$", re.MULTILINE)


def start_serve(env: dict[str, str], folder: Path, name: str = "serve") -> Served:
    """`sesguard serve --port 0`: the server binds a port the system picks and names it in its "listening on"
    line, which is read from its log (no port guessed free beforehand, which another process could take
    meanwhile); then once it answers HTTP (/healthz may say 503 while polling fails)."""
    running = start(["serve", "--port", "0"], env, folder, name)
    ports: list[str] = []

    def listening() -> bool:
        ports[:] = _LISTENING.findall(running.output())
        return bool(ports)

    wait_for(listening, "sesguard serve to name its port", [running])
    base = f"http://127.0.0.1:{ports[-1]}"

    def answering() -> bool:
        try:
            return get(f"{base}/healthz").status in (200, 503)
        except OSError:
            return False

    wait_for(answering, "sesguard serve to answer", [running])
    return Served(running, base, SlackSender(f"{base}/slack/events", env["SLACK_SIGNING_SECRET"]))


def leaked_secrets(*texts: str) -> dict[str, int]:
    """Which secrets appear in these texts, and how often (empty: none)."""
    joined = "\n".join(texts)
    return {name: joined.count(value) for name, value in SECRETS.items() if value in joined}


def stop_all(*running: Running) -> None:
    for process in running:
        process.stop()


def child_env(env: dict[str, str], **changes: str | None) -> dict[str, str]:
    """A copy of `env` with variables changed (None: removed)."""
    out = dict(env)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out



# ── a deployment: the stand-ins, a store, and the processes started against them ─────────────────────


@dataclass
class Deployment:
    aws: LocalAws
    slack: MisbehavingSlack
    store: Store
    folder: Path
    env: dict[str, str]
    started: list[Running] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # output of processes run to their end

    def worker(self, name: str = "worker", **changes: str | None) -> Running:
        running = start(["worker"], child_env(self.env, **changes), self.folder, name)
        self.started.append(running)
        return running

    def serve(self, name: str = "serve", **changes: str | None) -> Served:
        served = start_serve(child_env(self.env, **changes), self.folder, name)
        self.started.append(served.running)
        return served

    def poll_once(self, **changes: str | None) -> subprocess.CompletedProcess:
        done = run(["poll", "--once"], child_env(self.env, **changes), self.folder)
        self.finished += [done.stdout, done.stderr]
        return done

    def outputs(self) -> list[str]:
        return [running.output() for running in self.started] + self.finished

    # ── what landed in the store and in the channel ─────────────────────────────────────────────

    def rows(self, model) -> list:
        with self.store.session() as session:
            return list(session.exec(select(model)))

    def signals(self) -> list[Alert]:
        """Every stored signal with its alert's post, by identity."""
        return alerts(self.store)

    def poll_state(self, account: str = OWN_ACCOUNT, region: str = "us-east-1") -> PollState | None:
        with self.store.session() as session:
            return session.get(PollState, ("lookup", account, region))

    def watermark(self):
        state = self.poll_state()
        return state.watermark if state else None

    def polled_since(self, moment) -> bool:
        state = self.poll_state()
        return bool(state and state.last_success_at and state.last_success_at > moment)

    def status(self, served: Served, name: str) -> str:
        """`/sesguard status` as a triager asks it: the text of its answer."""
        url = self.slack.response_url(name)
        assert served.command("status", TRIAGER, url).status == 200
        wait_for(lambda: any(key == name for key, _ in self.slack.responses), f"the answer to {name}")
        return next(body["text"] for key, body in self.slack.responses if key == name)

    def alerts_in_channel(self) -> dict[str, list[str]]:
        """signal id → the ts of every alert message in the channel carrying it (not the learning report)."""
        found: dict[str, list[str]] = {}
        for message in self.slack.channel_messages(CHANNEL):
            if (message.metadata or {}).get("event_type") == "sesguard_learning_report":
                continue
            signal_id = ((message.metadata or {}).get("event_payload") or {}).get("signal_id")
            found.setdefault(signal_id, []).append(message.ts)
        return found

    def assert_each_alert_once(self) -> None:
        """Every stored signal is in the channel exactly once, and the store holds that message's ts."""
        posted = self.alerts_in_channel()
        rows = [row for row in self.signals() if row.status != "suppressed"]
        assert sorted(posted) == sorted(row.signal_id for row in rows), (posted, rows)
        assert {row.signal_id: [row.slack_ts] for row in rows} == posted


@contextmanager
def deployed(aws: LocalAws, folder: Path, store: Store, database_url: str | None = None) -> Iterator[Deployment]:
    """The stand-ins and a migrated store; the processes reach the store at `database_url` (default: its own)."""
    with MisbehavingSlack(token=BOT_TOKEN, channels={CHANNEL: PEOPLE}) as slack:
        env = sesguard_env(aws.env, slack.api_url, database_url or store.url)
        running = Deployment(aws, slack, store, folder, env)
        try:
            yield running
        finally:
            stop_all(*running.started)
            store.engine.dispose()
