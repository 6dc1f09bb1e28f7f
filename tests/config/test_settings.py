"""SPEC §5 "Configuration": settings from the environment and a `.env` file, the environment winning; a missing or
invalid setting stops start-up with one clear line naming it; durations accept decimals; `SLACK_ALERT_CHANNEL`
is a channel ID; the AWS endpoint variables are honoured and no endpoint is pinned in code.

(`scan`'s own light reader of its detection settings is checked against these in tests/config/test_scan_settings.py.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import boto3
import orjson
import pytest

from bot.cli.commands import main
from bot.config.settings import DURATIONS, Settings, load_settings
from tests.fakes.slack_api import FakeSlack
from tests.support import records as r
from tests.support.local_aws import subprocess_env
from tests.support.records import REPO, at
from tests.support.sesguard_processes import closed_port, free_port
from tests.support.slack_signing import get

pytestmark = pytest.mark.processes

PREFIXES = ("SESGUARD_", "SLACK_", "DATABASE_URL", "AWS_", "PORT")
PATIENCE_SECONDS = 60  # a bound on waiting for a process, not a measurement


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """No setting of the calling shell, no `.env` of a developer's: only what a test sets."""
    for name in [n for n in os.environ if n.startswith(PREFIXES)]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m bot ARGS` with only the given settings (and whatever `.env` is in `cwd`)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=PATIENCE_SECONDS, env={**clean, "PYTHONPATH": str(REPO), **(env or {})}, check=False)


# ── defaults ─────────────────────────────────────────────────────────────────────────────────────────


def test_the_defaults_are_those_of_the_spec(environment):
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_url == "sqlite:///sesguard.db"
    assert (settings.source, settings.identity_key) == ("lookup", "principal")
    assert (settings.learning_days, settings.forget_days, settings.group_minutes) == (7, 28, 60)
    assert (settings.poll_seconds, settings.lookback_minutes, settings.backfill_days) == (300, 20, 90)
    assert settings.contact_timeout_minutes == 120
    assert settings.exercise_user_agents == ["stratus-red-team_"]
    assert settings.port == 3000
    assert settings.slack_bot_token is settings.slack_alert_channel is None


# ── .env, and the environment winning over it ────────────────────────────────────────────────────────


def test_a_dot_env_file_is_read_and_the_environment_wins_over_it(tmp_path):
    r.write(tmp_path / "trail.json", [r.record(r.iam_user("alice")), r.record(r.iam_user("mallory"), time=at(days=2))])
    (tmp_path / ".env").write_text("# learning off, for a drill\n"
                                   "SESGUARD_LEARNING_DAYS=0\nSLACK_ALERT_CHANNEL=#security\n")

    from_file = run("scan", "--json", "trail.json", cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    assert len(from_file.stdout.splitlines()) == 2  # alice and mallory, nobody learned
    from_environment = run("scan", "--json", "trail.json", cwd=tmp_path, env={"SESGUARD_LEARNING_DAYS": "7"})
    assert from_environment.returncode == 0 and from_environment.stdout == ""

    # the full settings of the other commands: the file's bad channel stops start-up; the environment's
    # good one wins over it, and the next thing missing is named instead
    bad = run("worker", cwd=tmp_path)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert bad.stderr.splitlines() == [
        "sesguard: invalid setting SLACK_ALERT_CHANNEL: must be a channel ID such as C0123456789, not its name"]
    overridden = run("worker", cwd=tmp_path, env={"SLACK_ALERT_CHANNEL": "C0ALERTS"})
    assert overridden.returncode == 2
    assert overridden.stderr.splitlines() == ["sesguard: SLACK_BOT_TOKEN is not set (see .env.example)"]


# ── a missing or invalid setting: one line naming it ─────────────────────────────────────────────────

DISTINCT = "Zq9-value-never-echoed"  # part of every invalid value: the line names the setting, not its value
INVALID = {
    "SLACK_ALERT_CHANNEL": ["#security-alerts", "security-alerts", "U0123ABCD", "c0123abcd",
                            f"https://example.slack.com/archives/C0123ABCD?{DISTINCT}"],
    "SLACK_API_URL": ["slack.com/api/", f"{DISTINCT}"],
    "AWS_REGIONS": [",", " , "],
    "SESGUARD_SOURCE": ["s3:/bucket", "ftp://bucket/prefix", "athena", f"gs://{DISTINCT}"],
    "SESGUARD_ROLE_ARNS": [f"arn:aws:iam::111122223333:user/{DISTINCT}", DISTINCT],
    "SESGUARD_IDENTITY_KEY": ["session", "ARN", DISTINCT],
    "SESGUARD_BACKFILL_DAYS": ["91"],
    "SLACK_TRIAGERS": ["@alice", "alice", "UTRIAGER1,@bob", "u0123abcd", "<@U0123ABCD>", "S0TRIAGE",
                       f"U0123ABCD,{DISTINCT}"],
    "SLACK_TRIAGE_USERGROUP": ["security", "@security-team", "U0123ABCD", "s0triage", f"S{DISTINCT}"],
    "SESGUARD_BACKFILL_SOURCE": ["athena", f"athena://db.{DISTINCT}", "lake://a b", f"ftp://{DISTINCT}"],
    "SESGUARD_ATHENA_TABLE": ["logs", "db.logs; DROP TABLE x", f"db.{DISTINCT}"],
    "SESGUARD_ATHENA_WORKGROUP": ["a b", f"{DISTINCT}'"],
    "SESGUARD_ATHENA_OUTPUT": ["bucket/prefix", f"https://{DISTINCT}"],
    "SESGUARD_LAKE_EVENT_DATA_STORE": ["x' OR 1=1", f"arn:aws:s3:::{DISTINCT}"],
    "SESGUARD_SQL_MAX_GB": ["0", "-1", "nan", "inf", DISTINCT],
    "SESGUARD_DIGEST_HOUR": ["24", "-1", "9.5", f"{DISTINCT}"],
    "SESGUARD_BUSINESS_HOURS": [f"Mon-Fri 09:00-18:00 {DISTINCT}", "Mon-Fri", f"Mon-{DISTINCT} 09:00-18:00 UTC",
                                "Mon-Fri 18:00-09:00 Europe/Berlin", "Mon-Fri 09:00-25:00 UTC", "Mon-Fri 9-5 UTC"],
    "PORT": ["0", "65536", "http", "3000.5"],
    **{name: ["soon", "-1", "inf", "nan", "1e12", f"{DISTINCT}"] for name in (
        "SESGUARD_LEARNING_DAYS", "SESGUARD_FORGET_DAYS", "SESGUARD_GROUP_MINUTES", "SESGUARD_POLL_SECONDS",
        "SESGUARD_LOOKBACK_MINUTES", "SESGUARD_BACKFILL_DAYS", "SESGUARD_CONTACT_TIMEOUT_MINUTES",
        "SESGUARD_EVENT_RETENTION_DAYS", "SESGUARD_LEASE_SECONDS", "SESGUARD_RETRY_SECONDS")},
}
CASES = [(name, value) for name, values in INVALID.items() for value in values]


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v[:24]}" for n, v in CASES])
def test_an_invalid_setting_stops_start_up_with_one_line_naming_it(environment, capsys, name, value):
    environment.setenv(name, value)
    assert main(["worker"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"sesguard: invalid setting {name}: "), err
    assert DISTINCT not in err and "Value error" not in err and "Traceback" not in err


@pytest.mark.parametrize("command, missing, present", [
    (["worker"], "SLACK_BOT_TOKEN", {}),
    (["worker"], "SLACK_ALERT_CHANNEL", {"SLACK_BOT_TOKEN": "xoxb-1"}),
    (["worker"], "SLACK_ALERT_CHANNEL", {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_ALERT_CHANNEL": ""}),  # blank is unset
    (["poll", "--once"], "SLACK_ALERT_CHANNEL", {"SLACK_BOT_TOKEN": "xoxb-1"}),
    (["serve"], "SLACK_BOT_TOKEN", {"SLACK_SIGNING_SECRET": "s"}),
])
def test_a_missing_setting_stops_start_up_with_one_line_naming_it(environment, capsys, command, missing, present):
    for name, value in present.items():
        environment.setenv(name, value)
    assert main(command) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"sesguard: {missing} is not set (see .env.example)\n")


# ── durations accept decimals ────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("field", sorted(DURATIONS))
def test_every_duration_accepts_decimals(environment, field):
    name = Settings.model_fields[field].alias
    environment.setenv(name, "0.05")
    assert getattr(load_settings(), field) == 0.05


def test_decimal_detection_durations_reach_the_tuning(environment):
    for name, value in {"SESGUARD_LEARNING_DAYS": "0.5", "SESGUARD_FORGET_DAYS": "1.25",
                        "SESGUARD_GROUP_MINUTES": "0.5"}.items():
        environment.setenv(name, value)
    tuning = load_settings().tuning
    assert (tuning.learning, tuning.forget, tuning.group) == (timedelta(hours=12), timedelta(hours=30),
                                                              timedelta(seconds=30))


# ── SLACK_ALERT_CHANNEL is a channel ID ──────────────────────────────────────────────────────────────


@pytest.mark.parametrize("channel", ["C0123ABCD", "C08U3K5PQRS", "G0PRIVATE1"])
def test_a_channel_id_is_accepted_as_the_alert_channel(environment, channel):
    environment.setenv("SLACK_ALERT_CHANNEL", channel)
    assert load_settings().slack_alert_channel == channel


@pytest.mark.parametrize("triagers, usergroup", [("U0123ABCD", None), ("U0123ABCD, W0GRID123", "S0TRIAGE"),
                                                 (None, " S0TRIAGE ")])
def test_slack_user_and_usergroup_ids_are_accepted_as_triagers(environment, triagers, usergroup):
    for name, value in (("SLACK_TRIAGERS", triagers), ("SLACK_TRIAGE_USERGROUP", usergroup)):
        if value is not None:
            environment.setenv(name, value)
    settings = load_settings()
    assert settings.slack_triagers == ([part.strip() for part in triagers.split(",")] if triagers else [])
    assert settings.slack_triage_usergroup == (usergroup.strip() if usergroup else None)


def test_a_blank_triage_usergroup_is_unset(environment):
    environment.setenv("SLACK_TRIAGE_USERGROUP", "")
    assert load_settings().slack_triage_usergroup is None


# ── PORT, and `serve --port` winning over it ─────────────────────────────────────────────────────────


def test_serve_listens_on_port(tmp_path):
    """PORT alone (`serve --port` winning over it, and `--port 0`: tests/slack/test_serve.py). PORT must name a
    port, so one free a moment ago is taken; should another process bind it first, the server says so and
    exits, and the test takes another (the only race left, and one it notices)."""
    for _ in range(3):
        port = free_port()
        env = subprocess_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "PORT": str(port),
                              "SLACK_API_URL": f"http://127.0.0.1:{closed_port()}/api/", "SLACK_TRIAGERS": "U0TRIAGER",
                              "DATABASE_URL": f"sqlite:///{tmp_path / 'sesguard.db'}", "PYTHONPATH": str(REPO)})
        process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp_path, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            give_up = time.monotonic() + PATIENCE_SECONDS
            while process.poll() is None:
                try:
                    if get(f"http://127.0.0.1:{port}/healthz").status == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < give_up, "sesguard serve never answered on PORT"
                time.sleep(0.1)
            else:
                output = process.communicate()[0]
                assert "Address already in use" in output, output
                continue
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=PATIENCE_SECONDS)[0]
            assert process.returncode == 0
            assert f"listening on http://0.0.0.0:{port}" in output
            return
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    pytest.fail("three ports taken by others in a row")


# ── AWS endpoints: the standard variables, never pinned in code ──────────────────────────────────────

AWS_TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}


def test_aws_endpoint_url_reaches_s3_without_the_per_service_variable(tmp_path, s3_endpoint):
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                      region_name="us-east-1")
    s3.create_bucket(Bucket="endpoint-trail")
    trail = [r.record(r.iam_user("alice")), r.record(r.iam_user("mallory"), time=at(days=9))]
    s3.put_object(Bucket="endpoint-trail", Key="AWSLogs/trail.json", Body=r.encode(trail, "log"))
    done = run("scan", "--json", "s3://endpoint-trail/AWSLogs/", cwd=tmp_path,
               env={**AWS_TEST_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint})
    assert done.returncode == 0, done.stderr
    assert [orjson.loads(line)["identity"] for line in done.stdout.splitlines()] == [r.iam_user("mallory")["arn"]]


def test_aws_endpoint_url_reaches_sts_and_cloudtrail_without_the_per_service_variables(aws, tmp_path):
    aws.api.add_events(*[r.record(r.iam_user("alice", account="111111111111"), time=at())])
    env = {k: v for k, v in aws.env.items() if not k.startswith("AWS_ENDPOINT_URL_")}
    with FakeSlack() as slack:
        done = run("poll", "--once", cwd=tmp_path, env={
            **env, "AWS_ENDPOINT_URL": aws.url, "SLACK_BOT_TOKEN": slack.token, "SLACK_ALERT_CHANNEL": "C0ALERTS",
            "SLACK_API_URL": slack.api_url, "DATABASE_URL": f"sqlite:///{tmp_path / 'sesguard.db'}"})
    assert done.returncode == 0, done.stderr
    assert aws.api.lookups("111111111111", "us-east-1") != []


# An AWS endpoint written into the code would ignore AWS_ENDPOINT_URL*: every client is made without one.
PINNED = re.compile(r"endpoint_url\s*=|https?://[^\s\"']*amazonaws\.com(\.cn)?", re.IGNORECASE)
# Not an API endpoint but the published ip-ranges.json document (SPEC §10), which `sesguard ip-ranges --url` overrides.
PUBLISHED_DOCUMENTS = ('"https://ip-ranges.amazonaws.com/ip-ranges.json"',)


def test_no_aws_endpoint_is_pinned_in_code():
    sources = [path for package in ("bot", "detection") for path in (REPO / package).rglob("*.py")]
    pinned = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
              for path in sources for number, line in enumerate(path.read_text().splitlines(), 1)
              if PINNED.search(line) and not any(document in line for document in PUBLISHED_DOCUMENTS)]
    assert sources and pinned == []
