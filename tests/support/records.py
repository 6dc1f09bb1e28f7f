"""Synthetic CloudTrail records for the tests, built in the shapes of the public samples.

Nothing here is a real record: every builder writes a record the way CloudTrail writes one (field
names, identity layouts, console markers as in `../shared/samples/cloudtrail/`), with made-up
accounts, people, IPs and IDs. Each record carries `"sesguardSynthetic": true` so that it can never be
mistaken for a captured one.

Times are relative to T0 so that a test reads as a story: `at(days=8, minutes=5)`.
"""

from __future__ import annotations

import gzip
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

T0 = datetime(2025, 3, 3, 9, 0, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
LONG_TERM_KEY = "AKIAIOSFODNN7EXAMPLE"
SESSION_KEY = "ASIAY34FZKBOKMUTVV7A"
CLI_AGENT = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1 exe/x86_64.ubuntu.22 prompt/off command/ses.get-send-quota"
CONSOLE_AGENT = "aws-internal/3 aws-sdk-java/1.12.710 Linux/5.10 OpenJDK_64-Bit_Server_VM/25.402-b08 java/1.8.0_402"

_ids = itertools.count(1)


def at(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> str:
    """A CloudTrail eventTime, T0 plus the offset."""
    moment = T0 + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


# ── identities (userIdentity blocks) ─────────────────────────────────────────────────────────────────


def iam_user(name: str = "alice", account: str = ACCOUNT, key: str = LONG_TERM_KEY) -> dict:
    return {
        "type": "IAMUser", "principalId": f"AIDA{name.upper():X<17}"[:21], "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account, "accessKeyId": key, "userName": name,
    }


def root(account: str = ACCOUNT, key: str = LONG_TERM_KEY) -> dict:
    return {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account,
            "accessKeyId": key}


def federated_user(name: str = "partner", account: str = ACCOUNT) -> dict:
    return {
        "type": "FederatedUser", "principalId": f"{account}:{name}",
        "arn": f"arn:aws:sts::{account}:federated-user/{name}", "accountId": account, "accessKeyId": SESSION_KEY,
        "sessionContext": {"sessionIssuer": {"type": "IAMUser", "principalId": "AIDAFEDERATIONBROKER1",
                                             "arn": f"arn:aws:iam::{account}:user/broker", "accountId": account,
                                             "userName": "broker"},
                           "attributes": {"creationDate": "2025-03-03T08:00:00Z", "mfaAuthenticated": "false"}},
    }


def assumed_role(role: str, session: str, account: str = ACCOUNT, path: str = "/", issuer: bool = True) -> dict:
    """An assumed-role session; `path` is the IAM role path (`/aws-service-role/…/`, `/service-role/`, …)."""
    identity = {
        "type": "AssumedRole", "principalId": f"AROAEXAMPLEROLEID0001:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
        "accessKeyId": SESSION_KEY,
    }
    if issuer:
        identity["sessionContext"] = {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEROLEID0001",
                              "arn": f"arn:aws:iam::{account}:role{path}{role}", "accountId": account,
                              "userName": role},
            "attributes": {"creationDate": "2025-03-03T08:00:00Z", "mfaAuthenticated": "false"},
        }
    return identity


def sso_session(person: str = "dana@example.com", role: str = "AWSReservedSSO_AdministratorAccess_0123456789abcdef",
                account: str = ACCOUNT, issuer: bool = True) -> dict:
    """IAM Identity Center: the session name is the person (sample 01's shape)."""
    return assumed_role(role, person, account, path="/aws-reserved/sso.amazonaws.com/us-west-2/", issuer=issuer)


def ec2_role(session: str = "i-0abc123def4567890", account: str = ACCOUNT) -> dict:
    return assumed_role("app-server", session, account)


def lambda_role(session: str = "mailer-fn", account: str = ACCOUNT) -> dict:
    # Lambda's console-created execution roles live under /service-role/ — a customer role, not service-linked.
    return assumed_role("mailer-fn-role-x1y2", session, account, path="/service-role/")


def trusted_advisor(session: str = "TrustedAdvisor_111122223333_7472a099", account: str = ACCOUNT,
                    issuer: bool = True) -> dict:
    """Sample 02's shape: the service-linked role gets a new session name on every run."""
    return assumed_role("AWSServiceRoleForTrustedAdvisor", session, account,
                        path="/aws-service-role/trustedadvisor.amazonaws.com/", issuer=issuer)


def aws_service(service: str = "config.amazonaws.com") -> dict:
    return {"type": "AWSService", "invokedBy": service}


def invoked_by(identity: dict, principal: str) -> dict:
    return {**identity, "invokedBy": principal}


# ── records ──────────────────────────────────────────────────────────────────────────────────────────


def nested(depth: int) -> dict:
    """A JSON object `depth` levels deep: orjson reads up to 1,024 levels but writes only about 254."""
    value: dict = {"bottom": True}
    for _ in range(depth - 1):
        value = {"deeper": value}
    return value


def record(
    identity: dict,
    event_name: str = "GetSendQuota",
    *,
    time: str | None = None,
    source: str = "ses.amazonaws.com",
    account: str | None = None,
    region: str = "us-east-1",
    ip: str = "203.0.113.10",
    agent: str = CLI_AGENT,
    error: str | None = None,
    request: dict | None = None,
    console: bool | None = None,
    event_id: str | None = None,
    version: str = "1.09",
) -> dict:
    """One CloudTrail record; the account defaults to the identity's own."""
    rec: dict[str, Any] = {
        "eventVersion": version,
        "userIdentity": identity,
        "eventTime": time or at(),
        "eventSource": source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": request,
        "responseElements": None,
        "requestID": f"req-{next(_ids):08d}",
        "eventID": event_id or f"syn-{next(_ids):012d}",
        "readOnly": event_name.startswith(("Get", "List", "Describe")),  # as CloudTrail classifies the call
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account or identity.get("accountId") or ACCOUNT,
        "eventCategory": "Management",
        "sesguardSynthetic": True,
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = f"User is not authorized to perform: ses:{event_name}"
    if console is not None:
        rec["sessionCredentialFromConsole"] = "true" if console else "false"
    return rec


def service_quotas(identity: dict, service_code: str = "ses", event_name: str = "ListServiceQuotas", **kw) -> dict:
    return record(identity, event_name, source="servicequotas.amazonaws.com",
                  request={"serviceCode": service_code}, **kw)


def console_record(identity: dict, event_name: str = "GetAccount", **kw) -> dict:
    """An SES read from the console, as sample 08 shows it."""
    kw.setdefault("agent", "console.amazonaws.com")
    return record(invoked_by(identity, "signin.amazonaws.com"), event_name, console=True, **kw)


# ── a trail that tells every story ────────────────────────────────────────────────────────────────────


def realistic_trail() -> list[dict]:
    """Two accounts, seven weeks: baselines, Trusted Advisor and other AWS noise, look-alike API names, a
    console user, a CI role with a new session name per run, a forgotten and re-seen user, a
    cross-region burst with failed calls, ties in eventTime, and two records that cannot be evaluated."""
    a, b = ACCOUNT, OTHER_ACCOUNT
    alice, ci = iam_user("alice", a), assumed_role("github-deploy", "run-0", a)
    trail = [
        record(alice, "GetSendQuota", time=at(hours=1)),
        record(sso_session("dana@example.com", account=a), "ListIdentities", time=at(days=2)),
        record(iam_user("carol", b), "GetAccount", time=at(days=3), account=b),
        record(root(b), "GetSendQuota", time=at(days=4), account=b, agent="console.amazonaws.com", console=True),
    ]
    trail += [record(trusted_advisor(f"TrustedAdvisor_{a}_{day}", a), "GetSendQuota", time=at(days=day))
              for day in range(0, 49, 3)]
    trail += [record(aws_service(), "ListIdentities", time=at(days=20), account=b),
              record(invoked_by(ec2_role(account=a), "cloudformation.amazonaws.com"), "GetAccount",
                       time=at(days=21)),
              record(iam_user("api", a), "GetAccount", source="apigateway.amazonaws.com", time=at(days=22)),
              record(iam_user("api", a), "ListIdentities", source="cognito-identity.amazonaws.com",
                       time=at(days=22)),
              service_quotas(iam_user("quota", a), "ec2", time=at(days=22))]
    # the CI role runs every fourth day with a new session name: known after its first run in learning
    trail += [record(assumed_role("github-deploy", f"run-{day}", a), "GetSendQuota", time=at(days=day))
              for day in range(4, 49, 4)] + [record(ci, "GetSendQuota", time=at(days=0, hours=5))]
    # a console user new on day 10: low
    trail += [console_record(sso_session("eli@example.com", account=a), name, time=at(days=10, minutes=m))
              for m, name in [(0, "GetAccount"), (2, "ListEmailIdentities")]]
    # an attacker with alice's sibling's key: a burst across regions, some denied, ties in eventTime
    mallory = iam_user("svc-mailer", a)
    trail += [record(mallory, name, time=at(days=15, minutes=m), region=region, ip="198.51.100.66", error=error)
              for m, name, region, error in [(0, "GetSendQuota", "us-east-1", None),
                                             (0, "ListIdentities", "us-east-1", None),
                                             (1, "GetAccount", "eu-west-1", "AccessDenied"),
                                             (1, "ListEmailIdentities", "ap-south-1", "AccessDenied"),
                                             (59, "GetIdentityVerificationAttributes", "us-east-1", None),
                                             (75, "GetSendQuota", "us-east-1", None)]]
    trail.append(service_quotas(mallory, time=at(days=15, minutes=30), region="sa-east-1", ip="198.51.100.66"))
    # alice goes quiet for five weeks, comes back: new again
    trail += [record(alice, "GetSendQuota", time=at(days=40))]
    # account B: the root user again, and a new federated user after its learning period
    trail += [record(federated_user("partner", b), "GetSendQuota", time=at(days=30), account=b)]
    # records that cannot be evaluated: counted bad whatever file they are in
    trail += [{**record(iam_user("ghost", a)), "eventTime": "not a time"},
              record({"type": "IAMUser", "principalId": "AIDANOARN"}, time=at(days=33))]
    return trail


# ── files in the four input formats ──────────────────────────────────────────────────────────────────

FORMATS = ("log", "array", "lines", "lookup")


def encode(records: list[dict], layout: str) -> bytes:
    """The records as a file of one of the four `scan` input layouts (SPEC §2)."""
    if layout == "log":
        return orjson.dumps({"Records": records})
    if layout == "array":
        return orjson.dumps(records)
    if layout == "lines":
        return b"".join(orjson.dumps(r) + b"\n" for r in records)
    if layout == "lookup":
        events = [{"EventId": r.get("eventID"), "EventName": r.get("eventName"),
                   "CloudTrailEvent": orjson.dumps(r).decode()} for r in records]
        return orjson.dumps({"Events": events, "NextToken": "synthetic-page-token"})
    raise ValueError(layout)


def write(path: Path, records: list[dict], layout: str = "log", gzipped: bool = False) -> Path:
    data = encode(records, layout)
    if gzipped:
        data = gzip.compress(data, mtime=0)
        path = path.with_name(path.name + ".gz") if not path.name.endswith(".gz") else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ── the pipeline, in memory ──────────────────────────────────────────────────────────────────────────


def detect_records(records: list[dict], tuning=None, mode: str = "principal") -> list:
    """The signals the records raise, read as one JSON Lines file: reading, rule, exclusions and baseline."""
    from detection.baseline import Tuning
    from detection.scan import detect
    from detection.sources.files import scan_bytes

    scanned = scan_bytes("synthetic.jsonl", encode(records, "lines"), mode)
    assert scanned.error is None and scanned.bad == [], (scanned.error, scanned.bad)
    signals, _ = detect(scanned.calls, tuning or Tuning(), sightings=scanned.sightings)
    return sorted(signals, key=lambda s: (s.first_seen, s.account_id, s.identity))


# ── the pipeline, from the command line ──────────────────────────────────────────────────────────────

REPO = Path(__file__).resolve().parents[2]
# The public CloudTrail samples (records written by others; origins in _sources.json) and the synthetic fixtures.
SAMPLES = REPO / "tests" / "samples"
FIXTURES = REPO / "tests" / "fixtures"


def sesguard(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """`python -m bot ARGS` as an operator runs it, without any sesguard setting of the calling shell."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SESGUARD_", "DATABASE_URL", "AWS_"))}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**clean, "PYTHONPATH": str(REPO), **(env or {})})
