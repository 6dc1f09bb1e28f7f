"""`sesguard demo` (SPEC §2): the whole pipeline on the bundled trail with the embedded SQLite store, no
Slack, no AWS; each alert as Slack shows it, with a link that opens it in Slack's Block Kit Builder."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

import pytest

from bot.cli.demo.preview import BUILDER, builder_url, readable
from bot.cli.terminal import clip_middle, signal_table
from detection.signals import Signal
from tests.support.records import moment, sesguard

pytestmark = pytest.mark.processes

LINK = re.compile(re.escape(BUILDER) + r"(\S+)")


# Slack, AWS and a configured store all unreachable: the demo needs none of them (SPEC §2).
NOTHING_LISTENS = "http://127.0.0.1:9"
UNREACHABLE = {"SLACK_BOT_TOKEN": "", "SLACK_API_URL": f"{NOTHING_LISTENS}/api/", "AWS_ACCESS_KEY_ID": "",
               "AWS_ENDPOINT_URL": NOTHING_LISTENS, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none"}


def test_the_demo_shows_each_alert_as_slack_would_and_links_it_to_the_builder(tmp_path):
    done = sesguard("demo", cwd=tmp_path, env=UNREACHABLE)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "scanned 2143 records in 52 files: 180 matched, 4 signals, 0 bad records skipped" in out
    # the story of the trail: the attacker (high), a console user (low), a suppressed pen-test role, and the
    # engineer back after six weeks; Trusted Advisor and the look-alike APIs never appear
    assert "HIGH  arn:aws:iam::111122223333:user/svc-newsletter  (new)" in out
    assert "MEDIUM  arn:aws:iam::444455556666:role/pentest-readonly  (suppressed)" in out
    assert "TrustedAdvisor" not in out and "apigateway" not in out
    assert "The 3 alerts sesguard would post to Slack" in out
    links = LINK.findall(out)
    assert len(links) == 3
    payload = json.loads(unquote(links[0]))
    assert [block["type"] for block in payload["blocks"]][:2] == ["header", "section"]
    assert "svc-newsletter" in json.dumps(payload)
    assert "[ Escalate ]  [ Contact user ]  [ Suppress… ]  [ Not an issue ]" in out
    assert "🚨 Amazon SES enumeration by a previously unseen identity" in out
    assert '"type": "header"' not in out  # the raw JSON only with --blocks
    assert list(tmp_path.iterdir()) == []


def test_the_raw_block_kit_only_with_a_flag(tmp_path):
    done = sesguard("demo", "--blocks", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Block Kit (one block a line):") == 3
    assert '"type": "header"' in done.stdout


def test_the_builder_link_carries_the_blocks_exactly():
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "a & b <not a link> #channel 100%"}}]
    url = builder_url(blocks)
    assert url.startswith(BUILDER) and " " not in url and "<" not in url
    assert json.loads(unquote(url[len(BUILDER):])) == {"blocks": blocks}


def test_the_readable_message_shows_escaped_values_as_slack_does_without_terminal_escapes():
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*User agents*\n• curl &lt;!channel&gt; \x1b]0;x\x07"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Account*\n111122223333"}]},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Escalate"}}]},
    ]
    shown = readable(blocks)
    assert "User agents\n• curl <!channel> ?]0;x?" in shown
    assert "Account:               111122223333" in shown
    assert "[ Escalate ]" in shown and "\x1b" not in shown


def signal(identity: str) -> Signal:
    return Signal(signal_id="sg-1", account_id="111122223333", identity=identity, identity_type="AssumedRole",
                  arn=identity, first_seen=moment(), last_seen=moment(), event_names=["GetAccount", "GetSendQuota"],
                  event_count=2, regions=["us-east-1", "eu-west-1"], source_ips=["203.0.113.10"] * 20)


def test_the_table_fits_the_terminal_and_cuts_long_identities_in_the_middle():
    identity = ("arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_AdministratorAccess_0123456789abcdef/"
                "carol@example.com")
    table = signal_table([signal(identity)], width=100)
    header, row = table.splitlines()
    assert max(len(header), len(row)) <= 100
    assert header.split()[:4] == ["FIRST", "SEEN", "SEVERITY", "ACCOUNT"] and header.endswith("STATUS")
    shown = row.split()[3]
    assert shown.startswith("arn:aws") and shown.endswith("@example.com") and "…" in shown
    assert signal_table([signal(identity)]).splitlines()[1].split()[3] == clip_middle(identity, 80)
    assert clip_middle("abcdefghij", 7) == "ab…ghij" and clip_middle("short", 7) == "short"
