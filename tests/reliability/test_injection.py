"""Hostile values end to end (SPEC §4): CloudTrail fields and slash-command arguments full of mentions,
`<!channel>`, disguised links, Markdown, bidi overrides, SQL metacharacters and 100 KB strings.

Through a real `sesguard worker` (CloudTrail stand-in → store → Slack stand-in) and a real `sesguard serve`:
every message is accepted by a Slack stand-in that enforces Block Kit's limits, nothing in it pings anyone
or links anywhere, and oversized key fields are bad records that never block the good ones.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest

from detection.record import KEY_FIELD_BYTES, BadRecord, to_call
from detection.scan import detect
from tests.support.local_aws import OWN_ACCOUNT, ago
from tests.support.sesguard_processes import CHANNEL, SIGNING_SECRET, TRIAGER, leaked_secrets, wait_for
from tests.support.slack_harness import NO_LEARNING, cloudtrail_record
from tests.support.slack_signing import post, signed_headers

pytestmark = [pytest.mark.processes, pytest.mark.slow]

HOSTILE = ("<!channel> <!here> <!everyone> <@U0BOSS> <#C0SECRET> <https://evil.example|aws.amazon.com> "
           "*bold* _it_ ~strike~ `code` ```block``` > quote &amp; \u202eevil\u202c \u200b\n"
           "' OR 1=1; DROP TABLE signals; --")
HUNDRED_KB = (HOSTILE * (100_000 // len(HOSTILE) + 1))[:100_000]
# What Slack would turn into a ping or a link: <!…>, <@…>, <#…>, <http…>; the bot's own mention of the
# triager who acted is the one allowed.
ACTIVE_MARKUP = re.compile(r"<(?!@UTRIAGER1>)[!@#]?[^<>]*>")


def hostile_records() -> list[dict]:
    arn = f"arn:aws:iam::{OWN_ACCOUNT}:user/" + HOSTILE[:1500]  # within an ARN's 2,048 characters
    identity = {"type": "IAMUser", "arn": arn, "accountId": OWN_ACCOUNT, "accessKeyId": HUNDRED_KB,
                "userName": HUNDRED_KB, "principalId": HUNDRED_KB}
    common = dict(account=OWN_ACCOUNT, identity=identity, user_agent=HUNDRED_KB, ip=HOSTILE[:400])
    return [
        cloudtrail_record("GetSendQuota", region="us-east-1", errorCode=HUNDRED_KB, errorMessage=HUNDRED_KB,
                          requestParameters={"x": HUNDRED_KB}, eventTime=ago(minutes=2), **common),
        cloudtrail_record("ListIdentities", region="us-east-1", eventTime=ago(minutes=1), **common),
    ]


def oversized_records() -> list[dict]:
    """Records whose key fields are longer than AWS ever writes them: bad records, not a blocked batch."""
    too_long = {name: "x" * (limit + 1) for name, limit in KEY_FIELD_BYTES.items()}
    return [
        cloudtrail_record(user="huge-ip", ip=too_long["source_ip"], eventTime=ago(minutes=1)),
        cloudtrail_record(user="huge-id", eventID=too_long["event_id"], eventTime=ago(minutes=1)),
        cloudtrail_record(identity={"type": "IAMUser", "arn": "arn:aws:iam::1:user/" + too_long["arn"]},
                          eventTime=ago(minutes=1)),
    ]


def test_oversized_key_fields_are_bad_records_and_never_block_the_batch(store):
    for record in oversized_records():
        with pytest.raises(BadRecord, match="longer than"):
            to_call(record)
    fine = cloudtrail_record(user="bob")
    signals, _ = detect([to_call(fine)], NO_LEARNING, store)  # on PostgreSQL too, whose indexes refuse >2.7 KB
    assert [s.identity for s in signals] == [fine["userIdentity"]["arn"]]


def test_hostile_cloudtrail_values_and_command_arguments_reach_slack_inert(deployment):
    api, slack = deployment.aws.api, deployment.slack
    api.add_events(*[cloudtrail_record(user="alice", account=OWN_ACCOUNT, eventTime=ago(days=12))])
    worker = deployment.worker()
    served = deployment.serve()
    wait_for(deployment.watermark, "the backfill", [worker])
    good, bad = hostile_records(), oversized_records()
    for record in bad:
        record["recipientAccountId"] = OWN_ACCOUNT
    api.add_events(*good, *bad)
    wait_for(lambda: any(row.slack_ts for row in deployment.signals()), "the hostile alert", [worker])
    assert worker.terminate() == 0
    [row] = deployment.signals()
    assert row.event_count == 2 and row.arn == good[0]["userIdentity"]["arn"]
    assert "bad records skipped" in worker.output() and "longer than" in worker.output()

    answers = []
    for text in (f"history {HUNDRED_KB}", "history ' OR 1=1; DROP TABLE signals; --", f"history {HOSTILE} 7",
                 f"map {row.arn} <@U0BOSS>", f"unsuppress {HOSTILE}", "status", HUNDRED_KB):
        name = f"answer-{len(answers)}"
        answers.append(name)
        assert served.command(text, TRIAGER, slack.response_url(name)).status == 200
    click = {"type": "block_actions", "user": {"id": TRIAGER}, "team": {"id": "T0TEAM"}, "trigger_id": "t",
             "container": {"type": "message", "message_ts": row.slack_ts, "channel_id": CHANNEL},
             "channel": {"id": CHANNEL}, "message": {"ts": row.slack_ts},
             "actions": [{"type": "button", "action_id": "sesguard.escalate", "value": row.signal_id,
                          "block_id": "triage", "action_ts": "1.0"}]}
    body = urlencode({"payload": json.dumps(click)}).encode()
    assert post(served.sender.url, body, signed_headers(SIGNING_SECRET, body, "application/x-www-form-urlencoded")
                ).status == 200
    wait_for(lambda: len(slack.responses) == len(answers) and slack.replies(CHANNEL, row.slack_ts),
             "the answers and the escalation's thread line")
    wait_for(lambda: slack.calls_to("chat.update"), "the alert updated in place")

    assert slack.refused == []  # Slack accepted every message and every answer to a response URL
    outgoing = "\n".join(slack.all_outgoing_text())
    assert ACTIVE_MARKUP.findall(outgoing) == []
    assert "&lt;!channel&gt;" in outgoing and "&lt;https://evil.example|aws.amazon.com&gt;" in outgoing
    assert "\u202e" not in outgoing and "\u200b" not in outgoing
    assert len(max(outgoing.split("\n"), key=len)) < 40_000
    assert len(deployment.signals()) == 1 and deployment.signals()[0].status == "escalated"  # tables intact
    assert leaked_secrets(*deployment.outputs()) == {}
