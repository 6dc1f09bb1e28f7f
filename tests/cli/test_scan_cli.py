"""`sesguard scan` end to end, as an operator runs it (`python -m bot scan …` in a subprocess): the JSON
lines, the summary line, the table, `--db` on SQLite and PostgreSQL, the tuning flags, and S3 input
through moto's S3 server reached by AWS_ENDPOINT_URL_S3."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import boto3
import orjson
import pytest
from sqlmodel import func, select

from bot.cli.commands import main
from bot.store.schema import migrate
from detection.store import EventRow, KnownIdentity, SignalRow, Store, signal_from_row
from tests.support import records as r
from tests.support.records import FIXTURES, SAMPLES, at, sesguard

pytestmark = pytest.mark.processes

SUMMARY = re.compile(r"^scanned (\d+) records in (\d+) files: (\d+) matched, (\d+) signals, (\d+) bad records skipped$")
FIELDS = {
    "signal_id": str, "account_id": str, "identity": str, "identity_type": str, "arn": str, "first_seen": str,
    "last_seen": str, "event_names": list, "event_count": int, "regions": list, "source_ips": list,
    "user_agents": list, "access_key_ids": list, "error_codes": list, "severity": str, "reasons": list,
    "event_ids": list,
}


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """`sesguard ARGS` in this process (the same `main`, no interpreter start-up): (status, stdout, stderr).
    The subprocess tests prove the entry point; these cover the options quickly."""
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in [n for n in os.environ if n.startswith(("SESGUARD_", "DATABASE_URL"))]:
        monkeypatch.delenv(name)

    def run(*args: str, env: dict[str, str] | None = None, argv: list[str] | None = None) -> tuple[int, str, str]:
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            try:
                status = main(argv if argv is not None else ["scan", "--jobs", "1", *args])
            except SystemExit as exc:  # argparse's usage errors
                status = exc.code
        out, err = capsys.readouterr()
        return status, out, err

    return run


def write_trail(folder: Path, trail: list[dict]) -> Path:
    """The trail spread over the four layouts, half of them gzipped, in nested folders; plus a file that is
    not a log (ignored by name) in the middle."""
    for index, layout in enumerate(r.FORMATS * 2):
        r.write(folder / f"{index % 3}" / f"part-{index}.json", trail[index::8], layout, gzipped=index % 2 == 1)
    (folder / "1" / "notes.txt").write_text("not a log file")
    return folder


def json_lines(stdout: str) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def summary_of(stderr: str) -> tuple[int, ...]:
    match = SUMMARY.match(stderr.splitlines()[-1])
    assert match, stderr
    return tuple(int(n) for n in match.groups())


# ── output ───────────────────────────────────────────────────────────────────────────────────────────


def test_json_lines_carry_every_signal_field_and_the_summary_is_exact(tmp_path):
    trail = r.realistic_trail()
    done = sesguard("scan", "--json", str(write_trail(tmp_path / "trail", trail)), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    signals = json_lines(done.stdout)
    for signal in signals:
        assert {name: type(signal[name]) for name in FIELDS} == FIELDS
        assert signal["event_count"] == len(signal["event_ids"])
        for name in ("event_names", "regions", "source_ips", "user_agents", "access_key_ids", "error_codes"):
            assert signal[name] == sorted(set(signal[name]))
    assert [(s["identity"], s["severity"], s["event_names"], s["regions"], s["error_codes"]) for s in signals] == [
        (r.sso_session("eli@example.com")["arn"], "low", ["GetAccount", "ListEmailIdentities"], ["us-east-1"], []),
        (r.iam_user("svc-mailer")["arn"], "high",
         ["GetAccount", "GetIdentityVerificationAttributes", "GetSendQuota", "ListEmailIdentities", "ListIdentities",
          "ListServiceQuotas"], ["ap-south-1", "eu-west-1", "sa-east-1", "us-east-1"], ["AccessDenied"]),
        (r.federated_user("partner", r.OTHER_ACCOUNT)["arn"], "medium", ["GetSendQuota"], ["us-east-1"], []),
        (r.iam_user("alice")["arn"], "high", ["GetSendQuota"], ["us-east-1"], []),
    ]
    mallory = signals[1]
    assert (mallory["first_seen"], mallory["last_seen"], mallory["event_count"]) == (
        at(days=15), at(days=15, minutes=59), 6)
    assert mallory["account_id"] == r.ACCOUNT and mallory["identity_type"] == "IAMUser"
    assert mallory["source_ips"] == ["198.51.100.66"] and mallory["access_key_ids"] == [r.LONG_TERM_KEY]
    assert len(mallory["reasons"]) == 2  # a long-term key outside the console; four regions
    # matched: 28 calls evaluated and 19 by excluded callers (Trusted Advisor, AWSService, invokedBy)
    assert summary_of(done.stderr) == (len(trail), 8, 47, 4, 2)


def test_the_readable_table_has_one_row_a_signal_and_no_terminal_escapes(tmp_path, cli):
    sneaky = r.iam_user("evil\x1b]0;pwned\x07")
    trail = [r.record(r.iam_user("alice")), r.record(sneaky, time=at(days=9), agent="curl\x1b[2J")]
    r.write(tmp_path / "trail.json", trail)
    done = sesguard("scan", str(tmp_path / "trail.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["FIRST", "SEEN", "SEVERITY", "ACCOUNT", "IDENTITY", "CALLS", "REGIONS", "SOURCE",
                              "IPS", "STATUS"]
    assert len(rows) == 1 and "\x1b" not in done.stdout
    assert rows[0].split()[:3] == [at(days=9), "high", r.ACCOUNT]
    assert "user/evil?]0;pwned?" in rows[0] and rows[0].split()[-1] == "new"
    assert summary_of(done.stderr) == (2, 1, 2, 1, 0)

    status, out, err = cli(str(FIXTURES / "synthetic_02_servicequotas_ListServiceQuotas_ec2_IAMUser.json"))
    assert (status, out) == (0, "no signals\n")
    assert err.splitlines()[-1] == "scanned 1 records in 1 files: 0 matched, 0 signals, 0 bad records skipped"


# ── the public samples and the synthetic fixtures ────────────────────────────────────────────────────


def test_the_public_samples_give_one_signal_by_default_and_trusted_advisor_never(tmp_path, cli):
    """Sample 06 (root, 2015) starts observation of 111122223333 and is learned; the SSO person of 01-05
    (2025) is new. 02, the Trusted Advisor service-linked role, never alerts, whatever the learning."""
    default = sesguard("scan", "--json", str(SAMPLES), cwd=tmp_path)
    _, no_learning, no_learning_err = cli("--json", "--learning-days", "0", str(SAMPLES))
    person = "arn:aws:sts::111122223333:assumed-role/SampleRole/bobson.dugnutt"
    assert [(s["identity"], s["severity"], s["event_count"]) for s in json_lines(default.stdout)] == [
        (person, "medium", 4)]
    signals = json_lines(no_learning)
    assert [(s["identity"], s["severity"]) for s in signals] == [
        ("arn:aws:iam::111122223333:root", "high"), (person, "medium")]
    assert all(s["account_id"] != "187901811700" for s in signals)
    # Trusted Advisor matched, never signalled
    assert summary_of(default.stderr)[2:] == (8, 1, 0) and summary_of(no_learning_err)[2:] == (8, 2, 0)


def test_the_synthetic_fixtures_give_the_signals_their_readme_lists(cli):
    _, out, err = cli("--json", "--learning-days", "0", str(FIXTURES))
    got = {s["identity"].rsplit("/", 1)[-1]: (s["severity"], s["event_count"]) for s in json_lines(out)}
    assert got == {"ops-readonly": ("high", 1), "dana@example.com": ("medium", 1), "app-server": ("medium", 1),
                   "build-bot": ("high", 1), "partner-portal": ("medium", 1), "eli@example.com": ("low", 1),
                   "frank@example.com": ("high", 3), "batch-worker": ("medium", 3)}
    assert summary_of(err) == (18, 14, 15, 8, 0)  # 12 calls evaluated, 3 by excluded callers


# ── tuning flags ─────────────────────────────────────────────────────────────────────────────────────


def test_identity_key_arn_alerts_per_session_and_principal_per_role(tmp_path, cli):
    trail = [r.record(r.iam_user("alice"))] + [
        r.record(r.ec2_role(f"i-{n:017x}"), time=at(days=8 + n)) for n in range(3)]
    r.write(tmp_path / "trail.json", trail)
    principal = json_lines(cli("--json", str(tmp_path / "trail.json"))[1])
    by_flag = json_lines(cli("--json", "--identity-key", "arn", str(tmp_path / "trail.json"))[1])
    by_setting = json_lines(cli("--json", str(tmp_path / "trail.json"), env={"SESGUARD_IDENTITY_KEY": "arn"})[1])
    principal_over_setting = cli("--json", "--identity-key", "principal", str(tmp_path / "trail.json"),
                                 env={"SESGUARD_IDENTITY_KEY": "arn"})[1]
    assert [s["identity"] for s in principal] == [f"arn:aws:iam::{r.ACCOUNT}:role/app-server"]
    assert [s["identity"] for s in by_flag] == [rec["userIdentity"]["arn"] for rec in trail[1:]]
    assert by_setting == by_flag
    assert json_lines(principal_over_setting) == principal


def test_learning_and_forget_days_flags_override_the_settings(tmp_path, cli):
    alice, mallory = r.iam_user("alice"), r.iam_user("mallory")
    trail = [r.record(alice), r.record(mallory, time=at(days=3)), r.record(alice, time=at(days=12))]
    r.write(tmp_path / "trail.json", trail, "lines")
    path = str(tmp_path / "trail.json")

    def alerted(*flags: str, env=None) -> list[str]:
        status, out, err = cli("--json", *flags, path, env=env)
        assert status == 0, err
        return [s["identity"].rsplit("/", 1)[-1] for s in json_lines(out)]

    assert alerted() == []  # day 3 is learning; alice's 12-day gap is under 28 days
    assert alerted("--learning-days", "2") == ["mallory"]
    assert alerted("--learning-days", "2", "--forget-days", "10") == ["mallory", "alice"]
    assert alerted(env={"SESGUARD_LEARNING_DAYS": "2", "SESGUARD_FORGET_DAYS": "10"}) == ["mallory", "alice"]
    assert alerted("--learning-days", "7", env={"SESGUARD_LEARNING_DAYS": "2"}) == []


def test_group_minutes_from_the_flag_or_the_setting_and_decimal_durations(tmp_path, cli):
    mallory = r.iam_user("mallory")
    trail = [r.record(r.iam_user("alice"))] + [r.record(mallory, time=at(days=2, minutes=m)) for m in (0, 20, 40)]
    r.write(tmp_path / "trail.json", trail, "array")

    def counts(*flags: str, env=None) -> list[int]:
        return [s["event_count"] for s in json_lines(cli("--json", *flags, str(tmp_path / "trail.json"), env=env)[1])]

    assert counts("--learning-days", "1.5") == [3]
    assert counts("--learning-days", "1.5", "--group-minutes", "30") == [2]
    assert counts(env={"SESGUARD_LEARNING_DAYS": "1.5", "SESGUARD_GROUP_MINUTES": "10.5"}) == [1]
    assert counts("--learning-days", "2.5") == []


def test_exercise_tools_are_named_by_the_setting_and_still_alert(tmp_path, cli):
    trail = [r.record(r.iam_user("alice")),
             r.record(r.ec2_role(), time=at(days=9), agent="stratus-red-team_4fcf7a5b-fa9b-4ab5-a2ea-2f1dc5cd6bda"),
             r.record(r.iam_user("pentester", key=r.SESSION_KEY), time=at(days=9), agent="pacu/1.5.3")]
    r.write(tmp_path / "trail.json", trail)

    def exercises(env=None) -> dict[str, bool]:
        status, out, err = cli("--json", str(tmp_path / "trail.json"), env=env)
        assert status == 0, err
        return {s["identity"].rsplit("/", 1)[-1]: "red-team exercise tool" in s["reasons"] for s in json_lines(out)}

    assert exercises() == {"app-server": True, "pentester": False}
    assert exercises({"SESGUARD_EXERCISE_USER_AGENTS": "pacu/,stratus-red-team_"}) == {"app-server": True,
                                                                                       "pentester": True}
    assert exercises({"SESGUARD_EXERCISE_USER_AGENTS": ""}) == {"app-server": False, "pentester": False}


@pytest.mark.parametrize("args", [["scan"], ["scan", "--identity-key", "session", "x.json"],
                                  ["scan", "--learning-days", "-1", "x.json"],
                                  ["scan", "--forget-days", "soon", "x.json"], ["frobnicate"],
                                  ["scan", "--forget-days", "0", "x.json"],
                                  ["scan", "--learning-days", "1e12", "x.json"],
                                  ["scan", "--group-minutes", "inf", "x.json"]])
def test_usage_errors_exit_2(tmp_path, cli, args):
    r.write(tmp_path / "x.json", [r.record(r.iam_user())])
    status, out, err = cli(argv=args)
    assert status == 2 and out == "" and err


# ── --db: SQLite and PostgreSQL ──────────────────────────────────────────────────────────────────────


def _counts(url: str) -> tuple[int, int, int]:
    store = Store(url)
    try:
        with store.session() as session:
            return tuple(session.exec(select(func.count()).select_from(model)).one()
                         for model in (EventRow, KnownIdentity, SignalRow))
    finally:
        store.engine.dispose()


def test_without_db_the_state_is_in_memory_and_no_store_is_read_or_written(tmp_path):
    """SPEC §2: without --db nothing is kept, whatever DATABASE_URL says: a second run tells the same story
    as the first, and neither the configured store nor the default sesguard.db is touched."""
    configured = Store(f"sqlite:///{tmp_path / 'configured.db'}")
    migrate(configured)
    configured.engine.dispose()
    before = (tmp_path / "configured.db").read_bytes()
    # named on the command line, a file is read whatever its name
    r.write(tmp_path / "export.log", [r.record(r.iam_user("alice")), r.record(r.iam_user("mallory"), time=at(days=9))],
            "lines")
    files = sorted(tmp_path.iterdir())
    env = {"DATABASE_URL": configured.url}
    first, second = (sesguard("scan", "--json", "export.log", cwd=tmp_path, env=env) for _ in range(2))
    assert first.returncode == second.returncode == 0, first.stderr
    assert [s["identity"] for s in json_lines(first.stdout)] == [r.iam_user("mallory")["arn"]]
    assert second.stdout == first.stdout and second.stderr == first.stderr
    assert summary_of(second.stderr) == (2, 1, 2, 1, 0)
    assert (tmp_path / "configured.db").read_bytes() == before
    assert sorted(tmp_path.iterdir()) == files  # no sesguard.db either


def test_db_state_carries_over_between_runs_and_a_second_run_adds_nothing(tmp_path, store_url, cli):
    alice, bob, mallory = r.iam_user("alice"), r.iam_user("bob"), r.iam_user("mallory")
    week1 = write_trail(tmp_path / "week1", [r.record(alice, time=at(hours=h)) for h in range(8)])
    first = sesguard("scan", "--json", "--db", store_url, str(week1), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout == "" and summary_of(first.stderr) == (8, 8, 8, 0, 0)
    assert _counts(store_url) == (8, 1, 0)

    again = sesguard("scan", "--json", "--db", store_url, str(week1), cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == ""
    assert summary_of(again.stderr)[3] == 0 and _counts(store_url) == (8, 1, 0)

    # a later batch: learning counted from week 1's first call, alice known from week 1
    r.write(tmp_path / "week2" / "a.json", [r.record(bob, time=at(days=5)), r.record(alice, time=at(days=9)),
                                            r.record(mallory, time=at(days=9), event_id="m-1")])
    second = sesguard("scan", "--json", "--db", store_url, str(tmp_path / "week2"), cwd=tmp_path)
    assert [s["identity"] for s in json_lines(second.stdout)] == [mallory["arn"]]
    assert _counts(store_url) == (11, 3, 1)

    # the rest of mallory's burst arrives late: it joins the stored signal; nothing is new
    r.write(tmp_path / "late" / "b.json.gz", [r.record(mallory, "ListIdentities", time=at(days=9, minutes=20),
                                                       region="eu-west-1")], gzipped=True)
    (grown,) = json_lines(cli("--json", "--db", store_url, str(tmp_path / "late"))[1])
    assert (grown["event_count"], grown["event_ids"][0], grown["severity"]) == (2, "m-1", "high")
    assert _counts(store_url) == (12, 3, 1)

    status, out, err = cli("--json", "--db", store_url, str(tmp_path))
    assert (status, out) == (0, "") and _counts(store_url) == (12, 3, 1)
    assert summary_of(err)[3] == 0


def test_two_records_under_one_event_id_give_the_same_signals_in_one_run_or_two_in_either_order(tmp_path):
    """Damaged or forged input: two different records claim each of two eventIDs. Whichever file a run
    reads first, and whether one run reads both or two `--db` runs one each, the signals are the same:
    each record counts (keeping one would hide the other, and which one a store kept first would decide)."""
    alice, mallory, oscar = r.iam_user("alice"), r.iam_user("mallory"), r.iam_user("oscar")
    r.write(tmp_path / "base.json", [r.record(alice, time=at())])  # starts the learning period
    r.write(tmp_path / "a.json", [r.record(alice, time=at(days=10), event_id="dup-1"),
                                  r.record(oscar, time=at(days=12), event_id="dup-2")])
    # (at the same time as its twin: a call found by a later run that is earlier than the signal it joins
    # leaves the signal its ID, however it came, eventID shared or not)
    r.write(tmp_path / "b.json", [r.record(mallory, time=at(days=10), event_id="dup-1"),
                                  r.record(oscar, time=at(days=12), region="eu-west-1", event_id="dup-2")])

    stores = iter(range(3))

    def stored_signals(*runs: list[str]) -> list[dict]:
        url = f"sqlite:///{tmp_path / f'split-{next(stores)}.db'}"
        for files in runs:
            done = sesguard("scan", "--json", "--db", url, *(str(tmp_path / name) for name in files), cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        store = Store(url)
        with store.session() as session:
            rows = session.exec(select(SignalRow).order_by(SignalRow.first_seen)).all()
        store.engine.dispose()
        return [signal_from_row(row).to_dict() for row in rows]

    one_run = stored_signals(["base.json", "a.json", "b.json"])
    assert [(s["identity"], s["event_count"], s["regions"], s["event_ids"]) for s in one_run] == [
        (mallory["arn"], 1, ["us-east-1"], ["dup-1"]),
        (oscar["arn"], 2, ["eu-west-1", "us-east-1"], ["dup-2", "dup-2"])]
    assert stored_signals(["base.json"], ["a.json"], ["b.json"]) == one_run
    assert stored_signals(["base.json"], ["b.json"], ["a.json"]) == one_run
    in_memory = sesguard("scan", "--json", *(str(tmp_path / name) for name in ("b.json", "a.json", "base.json")),
                         cwd=tmp_path)
    assert [{k: v for k, v in s.items() if k != "status"} for s in json_lines(in_memory.stdout)] == [
        {k: v for k, v in s.items() if k != "status"} for s in one_run]


# ── S3 ───────────────────────────────────────────────────────────────────────────────────────────────


AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def test_s3_prefix_input_reads_every_log_file_under_the_prefix(tmp_path, s3_endpoint, cli):
    env = {**AWS_ENV, "AWS_ENDPOINT_URL_S3": s3_endpoint}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, **{k.lower(): v for k, v in AWS_ENV.items()
                                                          if k != "AWS_DEFAULT_REGION"}, region_name="us-east-1")
    s3.create_bucket(Bucket="trail-bucket")
    trail = r.realistic_trail()
    prefix = f"AWSLogs/o-abc123/{r.ACCOUNT}/CloudTrail/us-east-1/2025/03"
    for index, layout in enumerate(r.FORMATS * 2):
        body = r.encode(trail[index::8], layout)
        key = f"{prefix}/{index:02d}/part-{index}.json" + (".gz" if index % 2 else "")
        s3.put_object(Bucket="trail-bucket", Key=key, Body=gzip.compress(body) if index % 2 else body)
    s3.put_object(Bucket="trail-bucket", Key=f"{prefix}/digest.txt", Body=b"not a log")
    s3.put_object(Bucket="trail-bucket", Key="elsewhere/extra.json", Body=r.encode([r.record(r.iam_user("x"))], "log"))
    s3.put_object(Bucket="trail-bucket", Key=f"{prefix}/99/cut.json.gz", Body=b"\x1f\x8b\x08\x00broken")

    done = sesguard("scan", "--json", f"s3://trail-bucket/{prefix}", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    local = cli("--json", str(write_trail(tmp_path / "local", trail)))[1]
    assert json_lines(done.stdout) == json_lines(local) and len(json_lines(local)) == 4
    assert summary_of(done.stderr) == (len(trail), 9, 47, 4, 2)
    assert f"s3://trail-bucket/{prefix}/99/cut.json.gz" in done.stderr

    missing = sesguard("scan", "s3://no-such-bucket/AWSLogs/", cwd=tmp_path, env=env)
    assert missing.returncode == 2 and "s3://no-such-bucket/AWSLogs/" in missing.stderr


def test_folders_are_walked_for_json_lines_exports_too(tmp_path):
    """SPEC §2: *.json, *.jsonl, *.ndjson, each optionally .gz (CloudTrail Lake and SIEM exports)."""
    attackers = {name: r.record(r.iam_user(name), time=at(days=9)) for name in ("lake", "siem", "plain", "packed")}
    baseline = [r.record(r.iam_user("alice"))]
    folder = tmp_path / "exports"
    r.write(folder / "baseline.json", baseline)
    (folder / "lake.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (folder / "lake.jsonl").write_bytes(r.encode([attackers["lake"]], "lines"))
    (folder / "siem.ndjson.gz").write_bytes(gzip.compress(r.encode([attackers["siem"]], "lines")))
    (folder / "deeper").mkdir()
    (folder / "deeper" / "plain.ndjson").write_bytes(r.encode([attackers["plain"]], "lines"))
    (folder / "deeper" / "packed.JSONL.GZ").write_bytes(gzip.compress(r.encode([attackers["packed"]], "lines")))
    (folder / "deeper" / "notes.txt").write_bytes(r.encode([r.record(r.iam_user("ignored"), time=at(days=9))], "lines"))
    done = sesguard("scan", "--json", str(folder), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = {orjson.loads(line)["identity"].rsplit("/", 1)[-1] for line in done.stdout.splitlines()}
    assert found == set(attackers)
    assert SUMMARY.match(done.stderr.splitlines()[-1]).group(2) == "5"
    assert "warning" not in done.stderr


def test_a_folder_without_log_files_is_named_in_a_warning(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("no logs here")
    r.write(tmp_path / "logs" / "trail.json", [r.record(r.iam_user("alice"))])
    done = sesguard("scan", str(tmp_path / "empty"), str(tmp_path / "logs"), str(tmp_path / "other"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "warning" in line]
    assert warnings == [
        f"sesguard scan: warning: no *.json, *.jsonl or *.ndjson files (optionally .gz) in {tmp_path / 'empty'}",
        f"sesguard scan: warning: no *.json, *.jsonl or *.ndjson files (optionally .gz) in {tmp_path / 'other'}",
    ]
    assert SUMMARY.match(done.stderr.splitlines()[-1]).group(2) == "1"


# ── terminal safety ──────────────────────────────────────────────────────────────────────────────────

HOSTILE_NAME = ("evil\x1b]0;pwned\x07\x1b[2J\n"
                "scanned 0 records in 0 files: 0 matched, 0 signals, 0 bad records skipped\n")


def test_file_names_never_reach_the_terminal_raw(tmp_path):
    """A title-setting OSC sequence, a screen clear and a newline that would forge a summary line, in the
    names of a file with a bad record, a corrupt file, a folder with no log file and a missing path: stderr
    holds no ESC byte and exactly one summary line."""
    folder = tmp_path / f"trail-{HOSTILE_NAME}"
    r.write(folder / f"{HOSTILE_NAME}.json",
            [r.record(r.iam_user("alice")), {**r.record(r.iam_user("x")), "eventTime": "soon"}])
    (folder / f"{HOSTILE_NAME}.json.gz").write_bytes(b"\x1f\x8b not gzip")
    (tmp_path / f"empty-{HOSTILE_NAME}").mkdir()
    done = sesguard("scan", str(folder), str(tmp_path / f"empty-{HOSTILE_NAME}"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 4 and [bool(SUMMARY.match(line)) for line in lines] == [False, False, False, True]
    assert all("evil?]0;pwned??[2J?scanned 0 records" in line for line in lines[:3])
    assert lines[-1] == "scanned 2 records in 2 files: 1 matched, 0 signals, 1 bad records skipped"

    missing = sesguard("scan", str(tmp_path / f"missing-{HOSTILE_NAME}.json"), cwd=tmp_path)
    assert missing.returncode == 2 and "\x1b" not in missing.stderr and len(missing.stderr.splitlines()) == 1
