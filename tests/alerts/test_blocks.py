"""The Block Kit builders on their own: escaping, Slack's limits, the buttons that apply to each state."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.alerts import blocks as alert_blocks
from bot.alerts.blocks import alert_message, alert_text, status_line
from bot.contact.blocks import pick_person_modal
from bot.slack import blocks
from bot.slack.ids import Action
from bot.triage.blocks import suppress_modal, unchanged
from detection.record import to_call
from detection.signals import Signal, Status
from tests.fakes.block_kit import message_problems, view_problems
from tests.support import records
from tests.support.alert_text import HUGE, MESSAGE_BLOCKS_TEXT_BUDGET, block_texts, huge_signal, raw_brackets
from tests.support.slack_harness import cloudtrail_record

HOSTILE = ["<!channel>", "<@U123>", "<https://evil.example|click>", "<!here|here>", "a & b > c"]
LONG_AGENT = "Mozilla/5.0 " + "A" * 4988  # 5,000 characters


def signal_from(*records: dict) -> Signal:
    calls = [to_call(r) for r in records]
    signal = Signal.start(calls[0])
    for call in calls[1:]:
        signal.add(call)
    return signal


def hostile_signal() -> Signal:
    records = [
        cloudtrail_record("GetSendQuota", user=f"x{value}", ip=value, user_agent=value, region=value)
        for value in HOSTILE
    ]
    # Same identity for all, so that they form one signal: hostile values in the ARN too.
    identity = dict(records[0]["userIdentity"], arn="arn:aws:iam::111122223333:user/<!channel>",
                    accessKeyId="AKIA<@U123>")
    for record in records:
        record["userIdentity"] = identity
    records.append(cloudtrail_record("ListIdentities", user_agent=LONG_AGENT, identity=identity, errorCode="<https://evil|x>"))
    return signal_from(*records)


def test_cloudtrail_values_are_escaped_everywhere_in_the_alert():
    signal = hostile_signal()
    message = json.dumps(alert_message(signal)) + alert_text(signal)
    assert raw_brackets(message) == []
    assert "&lt;!channel&gt;" in message and "&lt;@U123&gt;" in message
    assert "&lt;https://evil.example|click&gt;" in message
    assert "a &amp; b &gt; c" in message


def test_text_objects_with_cloudtrail_values_are_verbatim_so_slack_does_not_linkify():
    for block in alert_message(hostile_signal()):
        for obj in [block.get("text")] + block.get("fields", []) + block.get("elements", []):
            if obj and obj.get("type") == "mrkdwn":
                assert obj.get("verbatim") is True, block


def test_a_5000_character_user_agent_is_cut_to_fit_slack_limits():
    message = alert_message(hostile_signal())  # to_dict() validated every limit
    agents = next(b for b in message if "User agents" in b.get("text", {}).get("text", ""))["text"]["text"]
    assert len(agents) <= blocks.SECTION_TEXT_LIMIT
    assert "Mozilla/5.0 AAAA" in agents and "A" * 400 not in agents and "…" in agents
    for block in message:
        for field in block.get("fields", []):
            assert len(field["text"]) <= blocks.FIELD_TEXT_LIMIT


def test_cutting_never_splits_an_entity():
    cut = blocks.text("&" * 100, 22)
    assert cut == "&amp;" * 4 + "…" and len(cut) <= 22


def test_control_and_bidi_characters_are_shown_as_question_marks():
    assert blocks.escape("evil\u202etxt.exe\nnext\u200b") == "evil?txt.exe?next?"


def test_text_blocks_cut_a_line_longer_than_a_section_and_split_the_rest_within_limits():
    lines = ["a" * 5000, "b" * 2000, "c" * 2000]  # e.g. /sesguard history of an identity with a huge burst
    sections = blocks.text_blocks(lines)  # to_dict() validated every limit
    assert [len(s["text"]["text"]) for s in sections] == [blocks.SECTION_TEXT_LIMIT, 2000, 2000]
    assert sections[0]["text"]["text"] == "a" * blocks.SECTION_TEXT_LIMIT


def test_long_lists_say_how_many_more_there_were():
    shown = blocks.listing([f"198.51.100.{n}" for n in range(255)], 200)
    assert len(shown) <= 200 and shown.endswith("more") and shown.startswith("198.51.100.0, ")


@pytest.mark.parametrize("status, expected", [
    (Status.NEW, [Action.ESCALATE, Action.CONTACT_USER, Action.SUPPRESS, Action.NOT_AN_ISSUE, Action.INVESTIGATE]),
    (Status.CONTACTING, [Action.ESCALATE, Action.SUPPRESS, Action.NOT_AN_ISSUE, Action.INVESTIGATE]),
    (Status.ESCALATED, [Action.CONTACT_USER, Action.SUPPRESS, Action.NOT_AN_ISSUE, Action.INVESTIGATE]),
    (Status.CLOSED, [Action.SUPPRESS, Action.INVESTIGATE, Action.REOPEN]),
    (Status.SUPPRESSED, [Action.REOPEN]),
])
def test_only_the_buttons_that_still_apply_are_shown(status, expected):
    signal = signal_from(cloudtrail_record())
    signal.status = status.value
    shown = [e["action_id"] for b in alert_message(signal) if b["type"] == "actions" for e in b["elements"]]
    assert shown == [a.value for a in expected]
    assert all(e["value"] == signal.signal_id for b in alert_message(signal) if b["type"] == "actions"
               for e in b["elements"])


def test_the_alert_says_what_happened_who_where_and_what_to_do():
    signal = signal_from(cloudtrail_record("GetSendQuota"), cloudtrail_record("ListIdentities", region="eu-west-1"))
    message = json.dumps(alert_message(signal, {"GetSendQuota": 1, "ListIdentities": 1}), ensure_ascii=False)
    for expected in ("arn:aws:iam::111122223333:user/alice", "111122223333", "eu-west-1", "us-east-1", "203.0.113.7",
                     "aws-cli/2.15.0", "GetSendQuota ×1", "ListIdentities ×1", "Severity: HIGH", "calls in 2 regions",
                     "Triage steps", "Escalate", "Contact user", "Suppress…", "Not an issue"):
        assert expected in message, expected
    assert signal.first_seen.strftime("%Y-%m-%d %H:%M:%S UTC") in message


def severity_section(message: list[dict]) -> str:
    [section] = [b["text"]["text"] for b in message if "*Severity:" in b.get("text", {}).get("text", "")]
    return section


def fields_of(message: list[dict]) -> dict[str, str]:
    [block] = [b for b in message if b["type"] == "section" and b.get("fields")]
    return dict(field["text"].split("\n", 1) for field in block["fields"])


def test_every_reason_and_both_times_are_in_the_alert():
    """Each severity condition of SPEC §1 that holds is a line of the alert, in order, "red-team exercise
    tool" and an investigation's finding included; the first and the last call's times are both shown."""
    root = records.root()
    first = records.record(root, "GetSendQuota", time="2025-03-04T10:00:00Z", agent="stratus-red-team_1a2b")
    last = records.record(root, "ListIdentities", time="2025-03-04T10:41:07Z", region="eu-west-1")
    everything = signal_from(first, last)
    everything.follow_on_abuse = ["ses:SendEmail"]
    console = signal_from(records.console_record(records.sso_session(), time="2025-03-04T09:00:00Z"))
    programmatic = signal_from(records.record(records.ec2_role(), time="2025-03-04T08:00:00Z"))
    cases = [
        (everything, "CRITICAL", ["follow-on abuse after the enumeration: ses:SendEmail",
                                  "the caller is the account's root user",
                                  f"long-term access key {records.LONG_TERM_KEY} used outside a console session",
                                  "calls in 2 regions: eu-west-1, us-east-1", "red-team exercise tool"]),
        (console, "LOW", ["every call came from an AWS console session"]),
        (programmatic, "MEDIUM", ["calls made with programmatic credentials, outside the console"]),
    ]
    for signal, severity, reasons in cases:
        assert signal.reasons == reasons
        message = alert_message(signal)
        section = severity_section(message)
        assert f"*Severity: {severity}*" in section
        assert section.split("\n")[1:] == [f"• {reason}" for reason in reasons]
    fields = fields_of(alert_message(everything))
    assert (fields["*First seen*"], fields["*Last seen*"]) == ("2025-03-04 10:00:00 UTC", "2025-03-04 10:41:07 UTC")
    assert "Seen: 2025-03-04 10:00:00 UTC to 2025-03-04 10:41:07 UTC" in alert_text(everything)
    assert "Reason: red-team exercise tool" in alert_text(everything)


def test_status_line_names_who_acted_and_when():
    class Step:
        actor, action, at = "UTRIAGER1", "escalated", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    assert status_line("escalated", Step()) == "*Status:* Escalated, by <@UTRIAGER1> at 2025-01-02 03:04:05 UTC"
    Step.actor = "<!channel>"  # never from Slack, but a mention is only ever made of a well-formed user ID
    assert "<!channel>" not in status_line("escalated", Step())


def test_modals_fit_slack_limits_and_carry_the_signal_id():
    signal = hostile_signal()
    signal.identity = signal.arn = "arn:aws:iam::111122223333:user/" + "<!channel>" * 10_000
    signal.account_id = "1" * 5000  # forged: longer than any account ID
    for view in (suppress_modal(signal), pick_person_modal(signal)):
        assert view["private_metadata"] == signal.signal_id
        assert view_problems(view) == []  # what Slack would refuse in it (the stand-in's rules)
        assert raw_brackets(json.dumps(view["blocks"])) == []


def forged_key_signal(keys: int = 8, length: int = 400) -> Signal:
    """One IAM user calling with `keys` forged access key IDs of `length` characters: `keys` reasons."""
    records = []
    for n in range(keys):
        record = cloudtrail_record(user="forger")
        record["userIdentity"]["accessKeyId"] = f"AKIA{n}" + "&" * (length - 5)  # & becomes &amp;: 5 times longer
        records.append(record)
    return signal_from(*records)


def test_eight_forged_400_character_access_keys_are_cut_to_fit_every_limit():
    signal = forged_key_signal()
    assert len(signal.reasons) == 8
    message = alert_message(signal)  # to_dict() validated every limit it knows
    assert message_problems({"blocks": message}) == []
    severity = message[1]["text"]["text"]
    assert len(severity) <= alert_blocks.REASONS_LIMIT and "long-term access key AKIA0&amp;" in severity
    assert severity.endswith("more") and "AKIA7" not in severity  # the rest counted, not dropped silently
    [fields] = [b["fields"] for b in message if b.get("fields")]
    assert sum(len(f["text"]) for f in fields) <= blocks.FIELDS_TOTAL_LIMIT
    assert sum(map(len, block_texts(message))) <= MESSAGE_BLOCKS_TEXT_BUDGET


def test_every_part_of_the_alert_is_cut_to_its_limit_when_every_value_is_huge():
    huge = HUGE
    signal = huge_signal(datetime(2025, 1, 2, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC))

    class Step:
        actor, action, at = huge, huge, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    message = alert_message(signal, {f"{n}{huge}": n for n in range(300)}, Step())
    assert message_problems({"blocks": message}) == []
    [fields] = [b["fields"] for b in message if b.get("fields")]
    assert len(fields) == 10 and sum(len(f["text"]) for f in fields) <= blocks.FIELDS_TOTAL_LIMIT
    assert all(len(f["text"]) > 100 for f in fields if f["text"].startswith(("*Identity*", "*Full ARN*")))
    contexts = [e["text"] for b in message if b["type"] == "context" for e in b["elements"]]
    assert all(len(text) <= blocks.CONTEXT_TEXT_LIMIT for text in contexts)
    assert sum(map(len, block_texts(message))) <= MESSAGE_BLOCKS_TEXT_BUDGET
    assert raw_brackets(json.dumps(message)) == [] and len(alert_text(signal)) <= blocks.FALLBACK_TEXT_LIMIT


def test_fitted_fields_give_short_values_what_they_need_and_share_the_rest():
    shown = blocks.fitted_fields([("A", lambda room: "x" * min(room, 10)), ("B", lambda room: "y" * room),
                                  ("C", lambda room: "z" * room)], total=1000)
    assert shown[0] == "*A*\n" + "x" * 10
    assert len(shown[1]) == len(shown[2]) and sum(map(len, shown)) <= 1000 and sum(map(len, shown)) > 990


def test_a_click_on_an_alert_not_in_the_store_says_so_rather_than_a_status_of_none():
    note = unchanged(None)
    assert note == "Nothing was changed: this alert is not known to sesguard."
    assert "None" not in note
