"""The pure part of Investigate (SPEC §6): which lookups, whose records, the summary, the window, and the
follow-on abuse that makes a signal critical."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detection.investigate import (
    ACCESS_KEY_ID,
    USERNAME,
    Lookup,
    Subject,
    Window,
    belongs,
    lookups,
    recent_window,
    signal_window,
    summarise,
    username_of,
)
from detection.playbook import PLAYBOOK, move_of
from detection.record import to_call
from detection.signals import CRITICAL, HIGH, Signal
from tests.support import records
from tests.support.attack_story import FOLLOW_ON, KEY, NEW_KEY, attack
from tests.support.local_aws import OWN_ACCOUNT

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
MALLORY = f"arn:aws:iam::{OWN_ACCOUNT}:user/mallory"


def subject_of(story, **kw) -> Subject:
    values = dict(label=MALLORY, account_id=OWN_ACCOUNT, identity=MALLORY, identity_type="IAMUser",
                  access_keys=(KEY,), usernames=("mallory",), enumeration_start=NOW - timedelta(minutes=50),
                  enumeration_event_ids=frozenset(r["eventID"] for r in story.enumeration))
    values.update(kw)
    return Subject(**values)


def window_of(now=NOW) -> Window:
    return signal_window(now - timedelta(minutes=50), now - timedelta(minutes=49.8), 24, now)


# ── the window and the lookups ───────────────────────────────────────────────────────────────────────


def test_the_window_opens_an_hour_before_the_first_call_and_ends_now_or_a_day_after_the_last():
    first, last = NOW - timedelta(hours=30), NOW - timedelta(hours=29)
    assert signal_window(first, last, 24, NOW) == Window(first - timedelta(hours=1), last + timedelta(hours=24))
    assert signal_window(first, last, 48, NOW) == Window(first - timedelta(hours=1), NOW)
    assert recent_window(6, NOW + timedelta(microseconds=5)) == Window(NOW - timedelta(hours=6), NOW)


def test_a_key_whose_caller_is_looked_up_by_name_needs_no_lookup_of_its_own():
    subject = Subject("u", OWN_ACCOUNT, MALLORY, "IAMUser", access_keys=(KEY, NEW_KEY), usernames=("mallory",),
                      named_keys=frozenset({KEY, NEW_KEY}))
    assert lookups(subject) == [Lookup(USERNAME, "mallory")]


def test_keys_of_unknown_callers_are_looked_up_by_themselves():
    role = f"arn:aws:iam::{OWN_ACCOUNT}:role/app-server"
    subject = Subject(role, OWN_ACCOUNT, role, "AssumedRole", access_keys=("ASIAONE", "ASIATWO"),
                      usernames=("i-1",), named_keys=frozenset({"ASIAONE"}))
    assert lookups(subject) == [Lookup(ACCESS_KEY_ID, "ASIATWO"), Lookup(USERNAME, "i-1")]
    assert lookups(Subject("k", None, None, access_keys=(KEY,))) == [Lookup(ACCESS_KEY_ID, KEY)]


def test_the_username_lookups_event_history_knows():
    assert username_of("arn:aws:iam::1:user/division/alice", "IAMUser") == "alice"
    assert username_of("arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0123/dana@example.com", "AssumedRole") \
        == "dana@example.com"
    assert username_of("arn:aws:sts::1:federated-user/partner", "FederatedUser") == "partner"
    assert username_of("arn:aws:iam::1:root", "Root") == "root"
    assert username_of("arn:aws:iam::1:role/app-server", "") is None


def test_records_are_the_identitys_by_key_or_by_identity_never_by_name_alone():
    story = attack(NOW)
    subject = subject_of(story)
    namesake, other_user = story.unrelated[0], story.unrelated[2]
    assert all(belongs(r, subject) for r in story.enumeration + story.other)
    assert not belongs(namesake, subject)  # the EC2 session also called mallory
    assert not belongs(other_user, subject)
    by_key = Subject("k", None, None, access_keys=(NEW_KEY,))
    assert [r["eventName"] for r in story.other if belongs(r, by_key)] == ["ListBuckets", "ListBuckets"]
    role = f"arn:aws:iam::{OWN_ACCOUNT}:role/app-server"
    assert belongs(namesake, Subject(role, OWN_ACCOUNT, role, "AssumedRole"))  # a role is all its sessions


# ── the summary ──────────────────────────────────────────────────────────────────────────────────────


def test_the_summary_lists_the_identitys_other_calls_and_exactly_its_follow_on_abuse():
    story = attack(NOW)
    # as LookupEvents answers: every record twice (by key and by name), newest first, namesakes included
    answered = list(reversed(story.everything)) * 2
    summary = summarise(answered, subject_of(story), window_of())

    assert summary.enumeration_calls == 3 and summary.calls == len(story.other)
    assert [move.api for move in summary.follow_on] == FOLLOW_ON
    assert [(move.calls, move.failed) for move in summary.follow_on] == [(3, 0), (1, 0), (1, 0)]
    assert summary.follow_on_names == ["SendEmail", "UpdateAccountSendingEnabled", "CreateAccessKey"]
    # write calls first, then the most called
    assert [(a.api, a.calls, a.write) for a in summary.apis] == [
        ("ses:SendEmail", 4, True), ("iam:CreateAccessKey", 1, True), ("ses:UpdateAccountSendingEnabled", 1, True),
        ("iam:ListUsers", 3, False), ("s3:ListBuckets", 2, False), ("sts:GetCallerIdentity", 1, False)]
    assert summary.errors == {"AccessDenied": 3} and summary.denied == 3
    assert summary.access_keys == {KEY: 10, NEW_KEY: 2}
    assert summary.first_at == NOW - timedelta(minutes=58) and summary.last_at == NOW - timedelta(minutes=29)
    assert "iam:CreateUser" not in {a.api for a in summary.apis}  # three hours ago: outside the window


def test_without_a_known_enumeration_every_playbook_call_of_the_window_counts():
    story = attack(NOW)
    summary = summarise(story.everything, subject_of(story, enumeration_start=None, enumeration_event_ids=frozenset()),
                        window_of())
    assert [(m.api, m.calls) for m in summary.follow_on][:1] == [("ses:SendEmail", 4)]
    assert summary.enumeration_calls == 0 and summary.calls == len(story.other) + 3


def test_the_top_apis_and_the_rest_counted():
    identity = records.iam_user("busy", account=OWN_ACCOUNT)
    many = [{**records.record(identity, f"Describe{n:02d}", source="ec2.amazonaws.com",
                              time=(NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")), "readOnly": True}
            for n in range(20) for _ in range(n + 1)]
    arn = identity["arn"]
    summary = summarise(many, Subject(arn, OWN_ACCOUNT, arn, "IAMUser"), Window(NOW - timedelta(hours=1), NOW))
    shown, more_apis, more_calls = summary.top_apis()
    assert [a.api for a in shown[:2]] == ["ec2:Describe19", "ec2:Describe18"] and len(shown) == 15
    assert (more_apis, more_calls) == (5, 1 + 2 + 3 + 4 + 5)


def test_readonly_as_records_and_lookupevents_write_it_and_unknown_counts_as_write():
    identity = records.iam_user("w", account=OWN_ACCOUNT)
    moment = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    calls = [{**records.record(identity, name, time=moment), "readOnly": value}
             for name, value in (("A", True), ("B", "true"), ("C", False), ("D", "false"), ("E", None))]
    arn = identity["arn"]
    summary = summarise(calls, Subject(arn, OWN_ACCOUNT, arn, "IAMUser"), Window(NOW - timedelta(hours=1), NOW))
    assert {a.api: a.write for a in summary.apis} == {
        "ses:A": False, "ses:B": False, "ses:C": True, "ses:D": True, "ses:E": True}


def test_unreadable_records_are_counted_not_guessed():
    identity = records.iam_user("x", account=OWN_ACCOUNT)
    arn = identity["arn"]
    broken = [{**records.record(identity), "eventTime": "yesterday"}, {**records.record(identity), "eventID": 7},
              "not a record", {"userIdentity": "nobody"}]
    summary = summarise(broken, Subject(arn, OWN_ACCOUNT, arn, "IAMUser"), Window(NOW - timedelta(days=1), NOW))
    assert (summary.calls, summary.unreadable) == (0, 2)


def test_the_summary_as_json():
    story = attack(NOW)
    data = summarise(story.everything, subject_of(story), window_of()).to_dict()
    assert data["window"] == {"start": "2026-03-03T10:10:00Z", "end": "2026-03-03T12:00:00Z"}
    assert [m["api"] for m in data["follow_on"]] == FOLLOW_ON and data["reading"]["capped"] is False


# ── the playbook and the critical severity ───────────────────────────────────────────────────────────


def test_the_playbook_is_the_spec_list_each_call_of_its_own_service():
    names = [move.event_name for move in PLAYBOOK]
    assert names == ["SendEmail", "SendRawEmail", "SendBulkEmail", "UpdateAccountSendingEnabled", "PutAccountDetails",
                     "CreateEmailIdentity", "VerifyEmailIdentity", "VerifyDomainIdentity",
                     "PutAccountSendingAttributes", "CreateAccessKey", "CreateUser", "CreateLoginProfile",
                     "UpdateLoginProfile", "AttachUserPolicy", "PutUserPolicy", "AttachRolePolicy",
                     "UpdateAssumeRolePolicy", "StopLogging", "DeleteTrail"]
    assert move_of("iam.amazonaws.com", "CreateAccessKey") and not move_of("ses.amazonaws.com", "CreateAccessKey")
    assert move_of("cloudtrail.amazonaws.com", "StopLogging") and not move_of("ses.amazonaws.com", "StopLogging")


def test_follow_on_abuse_makes_a_signal_critical_and_its_first_reason_names_the_calls():
    signal = Signal.start(to_call(records.record(records.iam_user("mallory"), time=records.at())))
    assert signal.severity == HIGH
    signal.follow_on_abuse = ["SendEmail", "CreateAccessKey"]
    assert signal.severity == CRITICAL
    assert signal.reasons[0] == "follow-on abuse after the enumeration: SendEmail, CreateAccessKey"
    assert signal.reasons[1].startswith("long-term access key")
    assert signal.to_dict()["severity"] == CRITICAL


def test_a_signal_that_grows_after_its_escalation_stays_critical(store):
    from detection.baseline import Tuning
    from detection.scan import detect
    from detection.store import SignalRow, signal_from_row

    no_learning = Tuning(learning=timedelta(0))
    mallory = records.iam_user("mallory")
    [signal], _ = detect([to_call(records.record(mallory, time=records.at()))], no_learning, store)
    with store.session() as session:  # what an investigation's escalation writes
        row = session.get(SignalRow, signal.signal_id)
        grown = signal_from_row(row)
        grown.follow_on_abuse = ["SendEmail"]
        row.follow_on_abuse, row.severity, row.reasons = grown.follow_on_abuse, grown.severity, grown.reasons
        session.add(row)
        session.commit()

    detect([to_call(records.record(mallory, "ListIdentities", time=records.at(minutes=5), region="eu-west-1"))],
           no_learning, store)

    with store.session() as session:
        row = session.get(SignalRow, signal.signal_id)
    assert (row.event_count, row.regions) == (2, ["eu-west-1", "us-east-1"])
    assert row.severity == CRITICAL and row.follow_on_abuse == ["SendEmail"]
    assert row.reasons[0] == "follow-on abuse after the enumeration: SendEmail"
    assert "calls in 2 regions" in row.reasons[-1]


def test_the_migration_creates_the_investigations_as_the_models_say(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import bot.investigate.tables  # noqa: F401  (registers the table)

    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    mine = [d for d in differences if "investigations" in repr(d) or "follow_on_abuse" in repr(d)]
    assert mine == []


# ── whose activity, from the store ───────────────────────────────────────────────────────────────────


def test_a_signals_subject_names_its_sessions_and_looks_up_only_the_keys_of_sessions_beyond_the_names(store):
    from detection import subjects
    from detection.baseline import Tuning
    from detection.scan import detect
    from detection.store import SignalRow

    sessions = [records.assumed_role("app-server", f"i-{n:02d}") | {"accessKeyId": f"ASIASESSIONKEY{n:06d}"}
                for n in range(12)]
    calls = [to_call(records.record(session, time=records.at(minutes=n))) for n, session in enumerate(sessions)]
    [signal], _ = detect(calls, Tuning(learning=timedelta(0)), store)
    with store.session() as session:
        row = session.get(SignalRow, signal.signal_id)

    subject = subjects.for_signal(store, row, "principal")

    assert subject.identity == "arn:aws:iam::111122223333:role/app-server"
    assert subject.usernames == tuple(f"i-{n:02d}" for n in range(subjects.MAX_USERNAMES))
    assert lookups(subject)[:2] == [Lookup(ACCESS_KEY_ID, "ASIASESSIONKEY000010"),
                                    Lookup(ACCESS_KEY_ID, "ASIASESSIONKEY000011")]
    assert len(lookups(subject)) == 2 + subjects.MAX_USERNAMES


def test_an_arn_or_key_asked_about_is_completed_from_the_store(store):
    from detection import subjects
    from detection.baseline import Tuning
    from detection.scan import detect

    user = records.iam_user("mallory", key=KEY)
    detect([to_call(records.record(user, time=records.at(), region="eu-west-1"))], Tuning(learning=timedelta(0)), store)
    window = Window(records.moment(hours=-1), records.moment(hours=1))

    by_arn = subjects.for_term(store, user["arn"], window, "principal")
    assert (by_arn.account_id, by_arn.identity_type, by_arn.access_keys) == ("111122223333", "IAMUser", (KEY,))
    assert by_arn.regions == ("eu-west-1",) and by_arn.enumeration_start == records.moment()
    assert lookups(by_arn) == [Lookup(USERNAME, "mallory")]
    by_key = subjects.for_term(store, KEY, window, "principal")
    assert (by_key.account_id, by_key.identity, lookups(by_key)) == (None, None, [Lookup(ACCESS_KEY_ID, KEY)])
    assert subjects.kind_of("203.0.113.9") == subjects.IP and subjects.kind_of("2001:db8::1") == subjects.IP
    assert subjects.kind_of("arn:aws:sts::111122223333:assumed-role/r/s") == subjects.IDENTITY
    assert subjects.kind_of("alice") is None and subjects.kind_of("AKIA<!channel>") is None
