"""`sesguard investigate ARN|ACCESS_KEY_ID|IP [--hours N] [--json]` (SPEC §2, §6) against the CloudTrail
stand-in over real HTTP: a readable summary or one JSON object, and the exit codes."""

from __future__ import annotations

import json

import orjson
import pytest

from bot.cli.commands import main
from tests.support.attack_story import FOLLOW_ON, IP, NEW_KEY, attack
from tests.support.local_aws import OWN_ACCOUNT
from tests.support.slack_harness import store_signals

MALLORY = f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"


@pytest.fixture
def attacked(aws, sqlite_store, monkeypatch, tmp_path):
    """The attack in CloudTrail, its enumeration in the store, sesguard's settings in the environment."""
    monkeypatch.chdir(tmp_path)  # no developer's .env
    monkeypatch.setenv("DATABASE_URL", sqlite_store.url)
    story = attack()
    aws.api.add_events(*story.everything)
    store_signals(sqlite_store, *story.enumeration)
    return story


def run(capsys, *args: str) -> tuple[int, str, str]:
    status = main(["investigate", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_an_arn_gets_a_readable_summary_of_the_last_hours(attacked, capsys, aws):
    status, out, _ = run(capsys, MALLORY, "--hours", "2")
    assert status == 0
    assert f"investigation of {MALLORY} in account {OWN_ACCOUNT}" in out
    assert "FOLLOW-ON ABUSE after" in out and all(f"  {api} ×" in out for api in FOLLOW_ON)
    assert "W ses:SendEmail ×4" in out and "iam:ListUsers ×3 (3 failed, 3 denied)" in out
    assert "other calls: 15 (6 write)" in out and "iam:CreateUser" not in out  # three hours ago: outside
    [lookup] = aws.api.lookups()
    assert lookup.params["LookupAttributes"] == [{"AttributeKey": "Username", "AttributeValue": "mallory"}]


def test_json_is_one_object_with_the_summary(attacked, capsys):
    status, out, _ = run(capsys, MALLORY, "--json")
    summary = json.loads(out)
    assert status == 0 and out.count("\n") == 1
    assert [move["api"] for move in summary["follow_on"]] == FOLLOW_ON
    assert summary["reading"]["pages"] == 1 and summary["window"]["end"].endswith("Z")


def test_an_access_key_is_looked_up_in_every_account_sesguard_reads(attacked, capsys, aws):
    status, out, _ = run(capsys, NEW_KEY)
    assert status == 0 and "every account sesguard reads" in out and "s3:ListBuckets ×2" in out
    assert [r.params["LookupAttributes"][0]["AttributeKey"] for r in aws.api.lookups()] == ["AccessKeyId"]


def test_an_ip_gets_its_stored_calls_across_identities_and_the_note(attacked, capsys, aws):
    status, out, _ = run(capsys, IP)
    assert status == 0 and "user/mallory" in out and "SQL engine" in out and aws.api.lookups() == []
    status, out, _ = run(capsys, IP, "--json")
    answer = orjson.loads(out)
    assert answer["address"] == IP and answer["history"]["event_count"] == 3 and "SQL engine" in answer["note"]


def test_hostile_values_cannot_forge_terminal_output(aws, sqlite_store, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_store.url)
    story = attack(userAgent="evil\x1b[2J\nforged line", sourceIPAddress="\x1b]0;title\x07")
    aws.api.add_events(*story.everything)
    status, out, _ = run(capsys, MALLORY)
    assert status == 0 and "\x1b" not in out and "\nforged line" not in out and "evil?[2J?forged line" in out


@pytest.mark.parametrize("args, message", [
    (["not-a-thing"], "is not an ARN, an access key ID or an IP address"),
    ([MALLORY, "--hours", "0"], "--hours must be"),
    ([MALLORY, "--hours", "nan"], "--hours must be"),
    ([MALLORY, "--hours", "2161"], "--hours must be"),
])
def test_what_it_cannot_investigate_is_a_usage_error(attacked, capsys, aws, args, message):
    status, out, err = run(capsys, *args)
    assert (status, out) == (2, "") and message in err and aws.api.lookups() == []


def test_credentials_that_reach_nothing_exit_1(attacked, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOBODYKNOWSTHIS1")
    status, out, _ = run(capsys, MALLORY)
    assert status == 1 and "could not read: " in out and "cannot identify the credentials' account" in out
