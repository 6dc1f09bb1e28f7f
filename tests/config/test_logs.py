"""The one log format: S3 keys, file names and AWS error text in log lines and tracebacks reach the
terminal printable, one log line a line."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timedelta

import pytest

from bot.cli.commands import main
from bot.config.logs import FORMAT, SUMMARY_LOGGER, JsonFormatter, PrintableFormatter, configure_logging, summary
from tests.support.local_aws import OWN_ACCOUNT, ses_calls, user
from tests.support.sesguard_processes import deployed
from tests.support.slack_harness import migrated_sqlite

HOSTILE = "key\x1b]0;pwned\x07\x1b[2J\nERROR forged: line\r\x85\u2028end"


def test_messages_and_tracebacks_are_printable_and_keep_their_own_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter(FORMAT))
    log = logging.Logger("sesguard-test")
    log.addHandler(handler)
    log.warning("skipped %s", HOSTILE)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("reading %s failed", HOSTILE)
    text = stream.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    first, second, *traceback, end = text.split("\n")
    assert first.endswith("WARNING sesguard-test: skipped key?]0;pwned??[2J?ERROR forged: line???end")
    assert second.endswith("ERROR sesguard-test: reading key?]0;pwned??[2J?ERROR forged: line???end failed")
    # the traceback keeps its lines, indented: the exception's own line break starts no line at the margin
    assert traceback[0] == "  Traceback (most recent call last):" and end == ""
    assert traceback[-2:] == ["  ValueError: key?]0;pwned??[2J", "  ERROR forged: line???end"]
    assert all(line.startswith("  ") for line in traceback)


# ── SESGUARD_LOG_FORMAT=json (SPEC §11) ─────────────────────────────────────────────────────────────────

# What a CloudTrail value may hold that a log pipeline must not take for structure or a Slack client for a
# mention: a line break, quotes, a Slack control sequence, a terminal escape.
JSON_HOSTILE = 'no "quotes"\nFORGED {"level": "INFO"} <!channel> \x1b[2J\u2028end'
KEYS = {"time", "level", "logger", "message", "fields"}


def json_lines(text: str) -> list[dict]:
    """Every line of `text` as the JSON object it must be (a line that is not one fails the test)."""
    entries = []
    for line in text.splitlines():
        assert line.isascii() and line.isprintable(), line
        entry = json.loads(line)
        assert set(entry) == KEYS, entry
        entries.append(entry)
    return entries


def test_a_json_line_carries_its_fields_escaped_on_one_printable_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.Logger("sesguard-test")
    log.addHandler(handler)
    log.warning("skipped %s", JSON_HOSTILE, extra={"fields": {"key": JSON_HOSTILE, "records": 3}})
    try:
        raise ValueError(JSON_HOSTILE)
    except ValueError:
        log.exception("reading failed")
    first, second = json_lines(stream.getvalue())
    assert (first["level"], first["logger"]) == ("WARNING", "sesguard-test")
    assert first["message"] == f"skipped {JSON_HOSTILE}"
    assert first["fields"] == {"key": JSON_HOSTILE, "records": 3}  # the value itself, whole, once decoded
    assert datetime.fromisoformat(first["time"]).utcoffset() == timedelta(0)
    assert second["fields"]["exception"].endswith(f"ValueError: {JSON_HOSTILE}")


def test_the_readable_format_stays_the_default_and_a_summary_is_its_bare_line(capsys):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for handler in handlers:  # as in a process: no handler yet, so configure_logging installs its own
        root.removeHandler(handler)
    try:
        configure_logging(logging.WARNING)
        logging.getLogger("bot.test").warning("read %s", "x")
        summary("lookup 111111111111/us-east-1: poll", records=3)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith(" WARNING bot.test: read x") and lines[1] == "lookup 111111111111/us-east-1: poll"


def test_a_setting_that_stops_start_up_is_a_json_line_too(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv("SESGUARD_LOG_FORMAT", "json")
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    assert main(["worker"]) == 2
    [entry] = json_lines(capsys.readouterr().err)
    assert (entry["level"], entry["message"]) == ("ERROR", "sesguard: SLACK_BOT_TOKEN is not set (see .env.example)")


@pytest.mark.processes
def test_poll_once_with_json_logs_writes_only_json_lines_and_its_summary_as_fields(aws, tmp_path):
    aws.api.add_events(*ses_calls(user("alice"), 2, days_ago=12))
    with deployed(aws, tmp_path, migrated_sqlite(tmp_path)) as deployment:
        assert deployment.poll_once(SESGUARD_LOG_FORMAT="json").returncode == 0
        aws.api.add_events(*ses_calls(user("mallory"), 1))
        aws.api.inject("denied", message=JSON_HOSTILE)  # CloudTrail's answer quotes it back
        done = deployment.poll_once(SESGUARD_LOG_FORMAT="json")
    assert done.returncode == 1 and done.stdout == ""
    entries = json_lines(done.stderr)
    failed = [entry for entry in entries if entry["fields"].get("outcome") == "failed"]
    assert failed and all(JSON_HOSTILE in entry["fields"]["error"] for entry in failed)
    results = [entry for entry in entries if entry["logger"] == SUMMARY_LOGGER]
    assert [entry["fields"]["part"] for entry in results] == ["source", "notifier"]
    assert results[0]["fields"]["account_id"] == OWN_ACCOUNT and results[0]["fields"]["region"] == "us-east-1"
    assert results[0]["message"] == (f"lookup {OWN_ACCOUNT}/us-east-1: FAILED: LookupEvents {OWN_ACCOUNT}/us-east-1: "
                                     f"AccessDeniedException: {JSON_HOSTILE}")
    assert results[0]["level"] == "WARNING"
    assert results[1]["fields"]["posted"] == 0 and results[1]["level"] == "INFO"
