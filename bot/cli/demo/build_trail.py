"""Writes the small demo trail in `bot/cli/demo/trail/` (run it again after changing a story:
`python -m bot.cli.demo.build_trail`).

Two accounts, seven weeks, in all four input formats, built in the shapes of public CloudTrail records.
The stories:
  1. a quiet baseline: SSO engineers, a CI role with a new session name every run, an EC2 app role;
  2. Trusted Advisor checking the SES quota every day with a new session name (must never alert);
  3. look-alike API names from API Gateway (GetAccount) and Cognito (ListIdentities) (must never alert);
  4. an attacker with a leaked long-term key enumerating SES across three regions, partly denied (high);
  5. a new engineer opening the SES console (low);
  6. an engineer back after six weeks away: forgotten, so new again (medium);
  7. a penetration-test role that the team has suppressed (stored as suppressed, not posted).
"""

from __future__ import annotations

import gzip
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent / "trail"
PROD, STAGING = "111122223333", "444455556666"
START = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
rng = random.Random(1526)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sso_user(account: str, email: str) -> dict:
    """An IAM Identity Center session: the session name is the person's e-mail."""
    return role_session(account, "AWSReservedSSO_AdministratorAccess_0123456789abcdef", email,
                        path="/aws-reserved/sso.amazonaws.com/eu-west-1/")


def role_session(account: str, role: str, session: str, path: str = "/") -> dict:
    return {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLE{role.upper()[:6]}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIA" + uuid.UUID(int=rng.getrandbits(128)).hex[:16].upper(),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role", "principalId": f"AROAEXAMPLE{role.upper()[:6]}", "accountId": account,
                "userName": role, "arn": f"arn:aws:iam::{account}:role{path}{role}",
            },
            "attributes": {"creationDate": _time(START), "mfaAuthenticated": "false"},
        },
    }


def iam_user(account: str, name: str, key: str) -> dict:
    return {
        "type": "IAMUser", "principalId": "AIDAEXAMPLE" + name.upper()[:8], "accountId": account,
        "arn": f"arn:aws:iam::{account}:user/{name}", "accessKeyId": key, "userName": name,
    }


def record(moment: datetime, identity: dict, name: str, *, source: str = "ses.amazonaws.com",
           region: str = "eu-west-1", ip: str = "198.51.100.10", agent: str = "aws-cli/2.17.0",
           error: str | None = None, params: dict | None = None, console: bool = False) -> dict:
    rec = {
        "eventVersion": "1.10",
        "userIdentity": identity,
        "eventTime": _time(moment),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": params,
        "responseElements": None,
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": identity.get("accountId", PROD),
        "eventCategory": "Management",
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"email.{region}.amazonaws.com"},
    }
    if error:
        rec["errorCode"] = error
        rec["errorMessage"] = f"User: {identity['arn']} is not authorized to perform: ses:{name}"
    if console:
        rec["sessionCredentialFromConsole"] = "true"
    return rec


def noise(moment: datetime, account: str) -> dict:
    """Everyday traffic from other services, which the scan must pass over cheaply."""
    service, name = rng.choice([("s3.amazonaws.com", "GetObject"), ("ec2.amazonaws.com", "DescribeInstances"),
                                ("kms.amazonaws.com", "Decrypt"), ("sts.amazonaws.com", "AssumeRole"),
                                ("lambda.amazonaws.com", "Invoke"), ("logs.amazonaws.com", "PutLogEvents")])
    who = role_session(account, "app-backend", f"i-0{rng.getrandbits(40):010x}")
    return record(moment, who, name, source=service, region="eu-west-1", ip="10.0.3.17",
                  agent="aws-sdk-go-v2/1.30.3 os/linux lang/go#1.22.5")


def build() -> dict[str, list[dict]]:
    days = [START + timedelta(days=d) for d in range(49)]
    files: dict[str, list[dict]] = {}

    def add(name: str, rec: dict) -> None:
        files.setdefault(name, []).append(rec)

    for day_number, day in enumerate(days):
        log = (f"AWSLogs/{PROD}/CloudTrail/eu-west-1/{day:%Y/%m/%d}/"
               f"{PROD}_CloudTrail_eu-west-1_{day:%Y%m%dT%H%M}Z_demo.json.gz")
        for _ in range(40):
            add(log, noise(day + timedelta(minutes=rng.randrange(600)), PROD))
        # 1. the baseline, learned in the first week and seen ever since
        if day_number % 3 == 0:
            add(log, record(day + timedelta(hours=2), sso_user(PROD, "alice@example.com"), "ListIdentities",
                            ip="203.0.113.7", agent="aws-internal/3 aws-sdk-java/1.12.770", console=True))
        ci = role_session(PROD, "github-actions-deploy", f"GitHubActions-{rng.getrandbits(32)}")
        add(log, record(day + timedelta(hours=3), ci, "GetSendQuota", ip="20.51.112.4",
                        agent="aws-sdk-js/3.614.0 ua/2.0 os/linux lang/js md/nodejs#20.15.0"))
        app = role_session(PROD, "mailer-app", f"i-0{rng.getrandbits(40):010x}")
        add(log, record(day + timedelta(hours=4), app, "GetAccount", ip="10.0.3.17",
                        agent="Boto3/1.34.144 md/Botocore#1.34.144 ua/2.0 os/linux"))
        # 2. Trusted Advisor: a new session name on every run
        ta_session = f"TrustedAdvisor_{PROD}_{uuid.UUID(int=rng.getrandbits(128))}"
        ta = role_session(PROD, "AWSServiceRoleForTrustedAdvisor", ta_session,
                          path="/aws-service-role/trustedadvisor.amazonaws.com/")
        add(log, record(day + timedelta(hours=5), ta, "GetSendQuota", region="us-east-1",
                        ip="trustedadvisor.amazonaws.com", agent="trustedadvisor.amazonaws.com"))
        if day_number == 1:  # bob, learned in the first week…
            add(log, record(day + timedelta(hours=6), sso_user(PROD, "bob@example.com"), "GetSendQuota",
                            ip="203.0.113.9", agent="aws-cli/2.17.0 Python/3.11.9 Darwin/23.5.0"))

    # 3. look-alikes from other services, by identities never seen: not SES
    lookalikes = []
    for n, (source, name) in enumerate([("apigateway.amazonaws.com", "GetAccount"),
                                        ("cognito-identity.amazonaws.com", "ListIdentities"),
                                        ("servicequotas.amazonaws.com", "ListServiceQuotas")]):
        params = {"serviceCode": "ec2"} if source.startswith("servicequotas") else None
        lookalikes.append(record(days[20] + timedelta(minutes=n),
                                 iam_user(PROD, "web-deployer", "AKIAEXAMPLEWEBDEPLOY"),
                                 name, source=source, params=params))
    files["lookalikes.lines.json"] = lookalikes

    # 4. the attacker: a leaked long-term key, a burst across three regions within minutes
    attacker = iam_user(PROD, "svc-newsletter", "AKIAEXAMPLELEAKED01")
    burst_start = days[30] + timedelta(hours=2, minutes=13)
    burst = []
    for n, (region, name, error) in enumerate([
        ("us-east-1", "GetSendQuota", None), ("us-east-1", "ListIdentities", None),
        ("us-east-1", "GetAccount", None), ("eu-west-1", "GetSendQuota", None),
        ("eu-west-1", "ListEmailIdentities", "AccessDenied"), ("ap-south-1", "GetSendQuota", None),
        ("ap-south-1", "GetIdentityVerificationAttributes", None), ("us-east-1", "ListServiceQuotas", None),
    ]):
        source = "servicequotas.amazonaws.com" if name == "ListServiceQuotas" else "ses.amazonaws.com"
        burst.append(record(burst_start + timedelta(seconds=37 * n), attacker, name, source=source, region=region,
                            ip="185.220.101.34", agent="Boto3/1.28.0 Python/3.9.7 Linux/5.15 <!channel> look here",
                            error=error, params={"serviceCode": "ses"} if source.startswith("service") else None))
    files["lookup-events-page.json"] = [
        {"EventId": r["eventID"], "EventName": r["eventName"], "CloudTrailEvent": json.dumps(r)} for r in burst]

    # 5. a new engineer opens the SES console; 6. bob is back after six weeks (forgotten after 28 days);
    # 7. the suppressed pen-test role, in the staging account
    later = [
        record(days[33] + timedelta(hours=10), sso_user(PROD, "carol@example.com"), "GetAccount",
               ip="203.0.113.21", agent="aws-internal/3 aws-sdk-java/1.12.770", console=True),
        record(days[33] + timedelta(hours=10, seconds=4), sso_user(PROD, "carol@example.com"), "ListEmailIdentities",
               ip="203.0.113.21", agent="aws-internal/3 aws-sdk-java/1.12.770", console=True),
        record(days[44] + timedelta(hours=9), sso_user(PROD, "bob@example.com"), "GetSendQuota",
               ip="203.0.113.9", agent="aws-cli/2.18.1 Python/3.12.6 Darwin/24.0.0"),
    ]
    pentest = role_session(STAGING, "pentest-readonly", "assessment-2026-10")
    for n, name in enumerate(["ListIdentities", "GetSendQuota"]):
        later.append(record(days[0] + timedelta(minutes=n), role_session(STAGING, "staging-admin", "ops"), name))
        later.append(record(days[40] + timedelta(minutes=n), pentest, name, ip="192.0.2.44",
                            agent="python-requests/2.32.3"))
    files["later.json"] = later
    return files


def write(files: dict[str, list[dict]]) -> None:
    for name, records in files.items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".json.gz"):
            path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode(), mtime=0))
        elif name.endswith(".lines.json"):  # JSON Lines (a folder scan reads *.json)
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        elif name.startswith("lookup-events"):
            path.write_text(json.dumps({"Events": records}, indent=1))
        else:
            path.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    write(build())
