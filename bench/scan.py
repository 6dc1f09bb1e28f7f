"""`sesguard scan` against what an engineer would use instead, on the same generated CloudTrail trail.

    python bench/scan.py                      # 200,000 records, 0.1 % SES calls, 3 runs per tool
    python bench/scan.py --records 2000000 --ses-share 0.005 --runs 5

It writes a realistic trail into bench/data/ (CloudTrail's own layout: AWSLogs/<account>/CloudTrail/
<region>/YYYY/MM/DD/*.json.gz, 1,000 records a file, about 1.3 KB a record, many services, identities and
user agents, SES calls hidden among them and other services' records that mention SES), then times, in
one run and on the same files:

- `sesguard scan` (the real command line, as a subprocess), with --jobs 1 and with the default;
- `zcat` alone: decompression, the floor for anything that reads these files;
- `zcat | jq` with the rule as a jq filter;
- DuckDB `read_json` with the rule as SQL;

prints records per second and the ratios, the peak memory of each run (the whole process tree), and
checks that every tool found the same number of matching records as the generator put in.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH / "data"
RECORDS_PER_FILE = 1000

# --------------------------------------------------------------------------------------------------
# The trail
# --------------------------------------------------------------------------------------------------

ACCOUNTS = ["111122223333", "444455556666", "777788889999"]
REGIONS = ["us-east-1", "us-east-1", "us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"]
PEOPLE = [f"{first}.{last}" for first in ("ana", "bo", "chen", "dara", "eli", "fatima", "goran", "hana")
          for last in ("silva", "okafor", "ng", "kowalski", "haddad")]
ROLES = ["ci-deploy", "app-backend", "data-pipeline", "lambda-orders", "ecs-task-web", "terraform-plan",
         "grafana-read", "backup-runner", "etl-nightly", "observability"]
SSO_ROLES = ["AWSReservedSSO_AdministratorAccess_0a1b2c3d4e5f6a7b", "AWSReservedSSO_ReadOnly_9f8e7d6c5b4a3a2b",
             "AWSReservedSSO_Developer_1122334455667788"]
USER_AGENTS = [
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.79-99.167.amzn2023.x86_64 exe/x86_64.amzn.2023 prompt/off command/s3.cp",
    "aws-cli/2.13.25 Python/3.11.5 Darwin/23.1.0 exe/x86_64 prompt/off command/sts.get-caller-identity",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.210-201.852.amzn2.x86_64 md/arch#x86_64 "
    "lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "aws-sdk-java/2.25.16 Linux/5.10.213-201.855.amzn2.x86_64 OpenJDK_64-Bit_Server_VM/17.0.10+7-LTS Java/17.0.10 "
    "vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
    "aws-sdk-go-v2/1.26.1 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/s3#1.53.0",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.42.0 "
    "(+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.26.0 os/linux lang/go#1.22.1",
    "aws-sdk-nodejs/2.1587.0 linux/v18.19.1 exec-env/AWS_Lambda_nodejs18.x promise",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488 Linux/5.10.213-180.839.amzn2int.x86_64 "
    "OpenJDK_64-Bit_Server_VM/25.372-b08 java/1.8.0_372 vendor/Oracle_Corporation cfg/retry-mode/standard]",
    "AWS Internal",
    "python-requests/2.31.0",
]
SCRIPTED_AGENTS = ["python-requests/2.31.0", "Boto3/1.26.0 Python/3.8.10 Linux/5.4.0-1045-aws Botocore/1.29.0",
                   "aws-cli/1.18.69 Python/2.7.18 Linux/4.14.255-276-224.499.amzn2.x86_64 botocore/1.16.19"]
SES_ENUMERATION = {"ses.amazonaws.com": ["GetSendQuota", "ListIdentities", "GetAccountSendingEnabled",
                                         "GetIdentityVerificationAttributes", "GetAccount", "ListEmailIdentities"]}
SES_OTHER = ["GetIdentityMailFromDomainAttributes", "GetIdentityDkimAttributes", "ListConfigurationSets",
             "DescribeActiveReceiptRuleSet", "GetSendStatistics"]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _ip(rng: random.Random) -> str:
    return (f"{rng.choice((3, 18, 34, 52, 54, 44, 203, 198))}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}")


def _key(rng: random.Random, long_term: bool) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return ("AKIA" if long_term else "ASIA") + "".join(rng.choice(alphabet) for _ in range(16))


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Trail:
    """Realistic CloudTrail records; `ses_share` of them are SES or Service Quotas calls."""

    def __init__(self, seed: int, ses_share: float):
        self.rng = random.Random(seed)
        self.ses_share = ses_share
        self.matching = 0  # records the rule matches (excluded callers' included, as `matched` counts them)

    # -- identities --------------------------------------------------------------------------------
    def identity(self, account: str, moment: datetime) -> tuple[dict, str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:  # an application or CI role: a new session name every session
            role = rng.choice(ROLES)
            session = rng.choice(("i-0", "botocore-session-", "GitHubActions-", "")) + _hex(rng, 12)
            return (self._assumed(account, f"role/{role}", role, session, moment, long_term=False),
                    rng.choice(USER_AGENTS[2:7]))
        if roll < 0.70:  # a person through IAM Identity Center
            role = rng.choice(SSO_ROLES)
            person = rng.choice(PEOPLE) + "@example.com"
            path = f"role/aws-reserved/sso.amazonaws.com/{rng.choice(REGIONS)}/{role}"
            return (self._assumed(account, path, role, person, moment, long_term=False),
                    rng.choice(USER_AGENTS[:2] + USER_AGENTS[7:9]))
        if roll < 0.85:  # an IAM user with a long-term key
            user = rng.choice(PEOPLE).replace(".", "-") + "-cli"
            return {
                "type": "IAMUser", "principalId": "AIDA" + _hex(rng, 16).upper(),
                "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account,
                "accessKeyId": _key(rng, long_term=True), "userName": user,
            }, rng.choice(USER_AGENTS[:7])
        if roll < 0.97:  # AWS acting on its own
            service = rng.choice(("config.amazonaws.com", "cloudformation.amazonaws.com", "autoscaling.amazonaws.com",
                                  "elasticloadbalancing.amazonaws.com", "ssm.amazonaws.com"))
            return {"type": "AWSService", "invokedBy": service}, service
        return {  # root, rarely
            "type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account,
            "accessKeyId": _key(rng, long_term=False),
            "sessionContext": {"attributes": {"creationDate": _time(moment - timedelta(minutes=20)),
                                              "mfaAuthenticated": "true"}},
        }, USER_AGENTS[7]

    def _assumed(self, account: str, path: str, role: str, session: str, moment: datetime, long_term: bool) -> dict:
        rng = self.rng
        principal = "AROA" + _hex(rng, 16).upper()
        return {
            "type": "AssumedRole", "principalId": f"{principal}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
            "accessKeyId": _key(rng, long_term),
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": principal, "arn": f"arn:aws:iam::{account}:{path}",
                                  "accountId": account, "userName": role},
                "attributes": {"creationDate": _time(moment - timedelta(minutes=rng.randrange(1, 600))),
                               "mfaAuthenticated": "false"},
            },
        }

    # -- events ------------------------------------------------------------------------------------
    def record(self, account: str, region: str, moment: datetime) -> dict:
        rng = self.rng
        if rng.random() < self.ses_share:
            return self.ses_record(account, region, moment)
        identity, agent = self.identity(account, moment)
        source, name, request, response, extra = rng.choice(self.EVENTS)(self, account, region)
        record = self.envelope(account, region, moment, identity, agent, source, name, request, response)
        record.update(extra)
        return record

    def envelope(self, account, region, moment, identity, agent, source, name, request, response) -> dict:
        rng = self.rng
        record = {
            "eventVersion": rng.choice(("1.08", "1.09", "1.10")),
            "userIdentity": identity,
            "eventTime": _time(moment),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": identity.get("invokedBy") or _ip(rng),
            "userAgent": agent,
            "requestParameters": request,
            "responseElements": response,
            "requestID": _uuid(rng),
            "eventID": _uuid(rng),
            "readOnly": name.startswith(("Get", "List", "Describe", "Head", "Lookup")),
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
        }
        if rng.random() < 0.7:  # older SDKs and some services record no TLS details
            record["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                    "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"}
        if rng.random() < 0.04:
            record["errorCode"] = "AccessDenied"
            record["errorMessage"] = (f"User: {identity.get('arn', 'unknown')} is not authorized to perform: "
                                      f"{source.split('.')[0]}:{name} because no identity-based policy "
                                      "allows the action")
            record["responseElements"] = None
        return record

    def ses_record(self, account: str, region: str, moment: datetime) -> dict:
        """An SES or Service Quotas call: mostly enumeration by people and roles, some not."""
        rng = self.rng
        roll = rng.random()
        identity, agent = self.identity(account, moment)
        if identity["type"] == "AWSService" or roll < 0.10:  # Trusted Advisor: matches, an excluded caller
            session = _hex(rng, 20)
            path = "role/aws-service-role/trustedadvisor.amazonaws.com/AWSServiceRoleForTrustedAdvisor"
            identity = self._assumed(account, path, "AWSServiceRoleForTrustedAdvisor", session, moment, long_term=False)
            identity.pop("accessKeyId")
            agent = "trustedadvisor.amazonaws.com"
            source, name, request, counts = "ses.amazonaws.com", "GetSendQuota", None, True
        elif roll < 0.20:  # SES reads that are not enumeration
            source, name, counts = "ses.amazonaws.com", rng.choice(SES_OTHER), False
            request = {"identities": ["example.com"]}
        elif roll < 0.30:  # Service Quotas: ses counts, other services do not
            code = rng.choice(("ses", "ses", "ec2", "lambda"))
            source, name, counts = "servicequotas.amazonaws.com", "ListServiceQuotas", code == "ses"
            request = {"serviceCode": code}
        else:
            if roll > 0.85:
                agent = rng.choice(SCRIPTED_AGENTS)
            name = rng.choice(SES_ENUMERATION["ses.amazonaws.com"])
            request = {"identityType": "Domain", "maxItems": 10} if name == "ListIdentities" else None
            source, counts = "ses.amazonaws.com", True
        self.matching += counts
        record = self.envelope(account, region, moment, identity, agent, source, name, request, None)
        if source == "ses.amazonaws.com" and "tlsDetails" in record:
            record["tlsDetails"]["clientProvidedHostHeader"] = f"email.{region}.amazonaws.com"
        return record

    # Each event kind returns (source, name, requestParameters, responseElements, extra fields).
    def _s3(self, account, region):
        rng = self.rng
        bucket = rng.choice(("acme-app-assets", "acme-data-lake-raw", "acme-terraform-state", "acme-logs-archive"))
        key = (f"{rng.choice(('year=2025/month=03', 'static/js', 'exports', 'env/prod'))}/{_hex(rng, 16)}"
               f".{rng.choice(('parquet', 'js', 'json', 'tfstate'))}")
        name = rng.choice(("GetObject", "PutObject", "HeadObject", "ListObjects"))
        extra = {
            "additionalEventData": {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                    "bytesTransferredIn": 0, "AuthenticationMethod": "AuthHeader",
                                    "x-amz-id-2": _hex(rng, 60), "bytesTransferredOut": rng.randrange(100, 10**7)},
            "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                          {"accountId": account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
            "managementEvent": False, "eventCategory": "Data",
        }
        if rng.random() < 0.005:  # SES delivering received mail into a bucket: mentions SES, is not SES
            extra["additionalEventData"]["invokedBy"] = "ses.amazonaws.com"
        request = {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key}
        return "s3.amazonaws.com", name, request, None, extra

    def _ec2(self, account, region):
        rng = self.rng
        name = rng.choice(("DescribeInstances", "DescribeSecurityGroups", "DescribeVolumes", "RunInstances"))
        if name == "RunInstances":
            instance = "i-" + _hex(rng, 17)
            request = {"instancesSet": {"items": [{"imageId": "ami-" + _hex(rng, 17), "minCount": 1, "maxCount": 1}]},
                       "instanceType": rng.choice(("t3.micro", "m6i.large", "c7g.xlarge")),
                       "subnetId": "subnet-" + _hex(rng, 17),
                       "disableApiTermination": False, "monitoring": {"enabled": False}}
            response = {"requestId": _uuid(rng), "reservationId": "r-" + _hex(rng, 17), "ownerId": account,
                        "instancesSet": {"items": [{
                            "instanceId": instance, "instanceState": {"code": 0, "name": "pending"},
                            "privateIpAddress": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"}]}}
            return "ec2.amazonaws.com", name, request, response, {}
        environment = {"name": "tag:Environment", "valueSet": {"items": [{"value": "prod"}]}}
        request = {"maxResults": 1000, "filterSet": {"items": [environment]}}
        return "ec2.amazonaws.com", name, request, None, {}

    def _sts(self, account, region):
        rng = self.rng
        if rng.random() < 0.5:
            return "sts.amazonaws.com", "GetCallerIdentity", None, None, {}
        role = rng.choice(ROLES)
        session = _hex(rng, 12)
        request = {"roleArn": f"arn:aws:iam::{account}:role/{role}", "roleSessionName": session,
                   "durationSeconds": 3600}
        response = {"credentials": {"accessKeyId": _key(rng, long_term=False),
                                    "sessionToken": "IQoJb3JpZ2luX2VjE" + _hex(rng, 40),
                                    "expiration": "Mar 14, 2025, 6:12:09 PM"},
                    "assumedRoleUser": {"assumedRoleId": f"AROA{_hex(rng, 16).upper()}:{session}",
                                        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}"}}
        extra = {"resources": [{"accountId": account, "type": "AWS::IAM::Role",
                                "ARN": f"arn:aws:iam::{account}:role/{role}"}],
                 "sharedEventID": _uuid(rng)}
        return "sts.amazonaws.com", "AssumeRole", request, response, extra

    def _kms(self, account, region):
        rng = self.rng
        key = f"arn:aws:kms:{region}:{account}:key/{_uuid(rng)}"
        request = {"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                   "encryptionContext": {"aws:s3:arn": f"arn:aws:s3:::acme-data-lake-raw/{_hex(rng, 24)}"}}
        return "kms.amazonaws.com", rng.choice(("Decrypt", "GenerateDataKey")), request, None, {
            "resources": [{"accountId": account, "type": "AWS::KMS::Key", "ARN": key}], "readOnly": True}

    def _iam(self, account, region):
        rng = self.rng
        name = rng.choice(("GetRole", "ListRoles", "GetPolicyVersion", "ListAttachedRolePolicies"))
        if rng.random() < 0.01:  # a record that names SES without being an SES call
            name = "CreateServiceLinkedRole"
            role = {"path": "/aws-service-role/ses.amazonaws.com/", "roleName": "AWSServiceRoleForAmazonSES",
                    "arn": f"arn:aws:iam::{account}:role/aws-service-role/ses.amazonaws.com/AWSServiceRoleForAmazonSES"}
            return "iam.amazonaws.com", name, {"aWSServiceName": "ses.amazonaws.com"}, {"role": role}, {}
        return "iam.amazonaws.com", name, {"roleName": rng.choice(ROLES)}, None, {}

    def _lambda(self, account, region):
        rng = self.rng
        function = rng.choice(("orders-api", "image-resize", "slack-notifier", "etl-trigger"))
        return "lambda.amazonaws.com", rng.choice(("Invoke", "GetFunction20150331v2")), {
            "functionName": f"arn:aws:lambda:{region}:{account}:function:{function}"}, None, {
            "resources": [{"accountId": account, "type": "AWS::Lambda::Function",
                           "ARN": f"arn:aws:lambda:{region}:{account}:function:{function}"}]}

    def _dynamodb(self, account, region):
        rng = self.rng
        table = rng.choice(("orders", "sessions", "feature-flags"))
        table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{table}"
        return "dynamodb.amazonaws.com", rng.choice(("GetItem", "PutItem", "Query", "DescribeTable")), {
            "tableName": table, "key": {"pk": "ORDER#" + _hex(rng, 10)}, "consistentRead": False}, None, {
            "resources": [{"accountId": account, "type": "AWS::DynamoDB::Table", "ARN": table_arn}]}

    def _monitoring(self, account, region):
        rng = self.rng
        cpu = {"namespace": "AWS/EC2", "metricName": "CPUUtilization"}
        query = {"id": "m1", "metricStat": {"metric": cpu, "period": 300, "stat": "Average"}}
        return "monitoring.amazonaws.com", rng.choice(("GetMetricData", "DescribeAlarms", "ListMetrics")), {
            "startTime": "Mar 14, 2025, 5:00:00 PM", "endTime": "Mar 14, 2025, 6:00:00 PM",
            "metricDataQueries": [query]}, None, {}

    def _ssm(self, account, region):
        rng = self.rng
        name = rng.choice(("GetParameter", "GetParameters", "UpdateInstanceInformation"))
        parameter = f"/prod/{rng.choice(('db', 'api', 'cache'))}/{rng.choice(('url', 'password', 'host'))}"
        return "ssm.amazonaws.com", name, {"name": parameter, "withDecryption": True}, None, {}

    def _secrets(self, account, region):
        rng = self.rng
        return "secretsmanager.amazonaws.com", "GetSecretValue", {
            "secretId": f"arn:aws:secretsmanager:{region}:{account}:secret:prod/{_hex(rng, 6)}"}, None, {}

    def _ecr(self, account, region):
        rng = self.rng
        return "ecr.amazonaws.com", rng.choice(("GetAuthorizationToken", "BatchGetImage", "GetDownloadUrlForLayer")), {
            "registryId": account, "repositoryName": rng.choice(("web", "worker", "migrations")),
            "imageIds": [{"imageTag": "sha-" + _hex(rng, 7)}]}, None, {}

    def _signin(self, account, region):
        rng = self.rng
        return "signin.amazonaws.com", "ConsoleLogin", None, {"ConsoleLogin": "Success"}, {
            "additionalEventData": {"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                    "MFAUsed": rng.choice(("Yes", "No"))}, "eventType": "AwsConsoleSignIn"}

    def _sns(self, account, region):
        rng = self.rng
        return "sns.amazonaws.com", "Publish", {"topicArn": f"arn:aws:sns:{region}:{account}:alerts",
                                                "messageStructure": "json"}, {"messageId": _uuid(rng)}, {}

    EVENTS = [_s3, _s3, _s3, _s3, _ec2, _ec2, _sts, _sts, _sts, _kms, _kms, _iam, _lambda, _dynamodb, _dynamodb,
              _monitoring, _ssm, _secrets, _ecr, _signin, _sns]


@dataclass
class Generated:
    files: list[Path]
    records: int
    matching: int
    raw_bytes: int
    gz_bytes: int


def generate(data: Path, records: int, ses_share: float, seed: int = 20250314) -> Generated:
    """Write the trail under data/AWSLogs once; a manifest beside it lets later runs with the same
    parameters reuse it (outside AWSLogs, so that no tool reads it as a log file)."""
    manifest = data / "manifest.json"
    wanted = {"records": records, "ses_share": ses_share, "seed": seed, "records_per_file": RECORDS_PER_FILE,
              "version": 1}
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        if saved.get("parameters") == wanted:
            return Generated([data / name for name in saved["files"]], records, saved["matching"],
                             saved["raw_bytes"], saved["gz_bytes"])
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    trail = Trail(seed, ses_share)
    rng = trail.rng
    start = datetime(2025, 3, 14, tzinfo=UTC)
    files: list[str] = []
    raw_bytes = gz_bytes = 0
    written = 0
    while written < records:
        count = min(RECORDS_PER_FILE, records - written)
        account, region = rng.choice(ACCOUNTS), rng.choice(REGIONS)
        moment = start + timedelta(seconds=written * 0.5)
        batch = [trail.record(account, region, moment + timedelta(seconds=i * 0.5)) for i in range(count)]
        body = json.dumps({"Records": batch}, separators=(",", ":")).encode()
        folder = Path("AWSLogs", account, "CloudTrail", region, moment.strftime("%Y/%m/%d"))
        name = folder / f"{account}_CloudTrail_{region}_{moment.strftime('%Y%m%dT%H%MZ')}_{_hex(rng, 16)}.json.gz"
        (data / folder).mkdir(parents=True, exist_ok=True)
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        (data / name).write_bytes(packed)
        files.append(str(name))
        raw_bytes += len(body)
        gz_bytes += len(packed)
        written += count
    manifest.write_text(json.dumps({"parameters": wanted, "files": files, "matching": trail.matching,
                                    "raw_bytes": raw_bytes, "gz_bytes": gz_bytes}))
    return Generated([data / name for name in files], records, trail.matching, raw_bytes, gz_bytes)


# --------------------------------------------------------------------------------------------------
# The same rule for jq and DuckDB (detection/rule.py: matches()); they count what `matched` counts, and are
# spared the exclusions and identity keys that sesguard works out besides
# --------------------------------------------------------------------------------------------------

SES_CALLS = ", ".join(f'"{name}"' for name in SES_ENUMERATION["ses.amazonaws.com"])

JQ_FILTER = f"""
def obj: if type == "object" then . else {{}} end;
def matching:
  (.eventSource == "ses.amazonaws.com" and (.eventName | IN({SES_CALLS})))
  or (.eventSource == "servicequotas.amazonaws.com" and .eventName == "ListServiceQuotas"
      and (.requestParameters | obj | .serviceCode) == "ses");
.Records[] | select(matching) | .eventID
"""

DUCKDB_SQL = f"""
WITH records AS (
  SELECT unnest(Records) AS r
  FROM read_json($files, columns = {{'Records': 'JSON[]'}}, format = 'auto', compression = 'gzip')
), fields AS (
  SELECT r->>'$.eventSource' AS source, r->>'$.eventName' AS name,
         r->>'$.requestParameters.serviceCode' AS service_code
  FROM records
)
SELECT count(*) FROM fields
WHERE ((source = 'ses.amazonaws.com' AND name IN ({SES_CALLS.replace('"', "'")}))
       OR (source = 'servicequotas.amazonaws.com' AND name = 'ListServiceQuotas' AND service_code = 'ses'))
"""

DUCKDB_SCRIPT = """
import sys, duckdb
files = sys.stdin.read().split("\\0")
connection = duckdb.connect()
connection.execute("SET enable_progress_bar = false")
print(connection.execute(sys.argv[1], {"files": files}).fetchall()[0][0])
"""


# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------

@dataclass
class Measured:
    seconds: float
    stdout: str
    stderr: str
    peak_mb: float  # the sum of each process's peak resident set in the command's process tree


class TreeMemory(threading.Thread):
    """Samples the process tree under a pid and keeps each process's peak RSS (VmHWM).

    Summing per-process peaks over-states the true peak (shared pages count twice, peaks need not
    coincide), so the figure is an upper bound."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = pid
        self.peaks: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            for pid in self._tree(self.root):
                self.peaks[pid] = max(self.peaks.get(pid, 0), self._hwm_kb(pid))

    def _tree(self, pid: int) -> list[int]:
        found, todo = [], [pid]
        while todo:
            current = todo.pop()
            found.append(current)
            try:
                for task in os.listdir(f"/proc/{current}/task"):
                    with open(f"/proc/{current}/task/{task}/children") as children:
                        todo.extend(int(child) for child in children.read().split())
            except OSError:
                continue
        return found

    @staticmethod
    def _hwm_kb(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def peak_mb(self) -> float:
        return sum(self.peaks.values()) / 1024


def measure(command: list[str], stdin: bytes, cwd: Path, env: dict | None = None) -> Measured:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=cwd, env=env)
    memory = TreeMemory(process.pid)
    memory.start()
    stdout, stderr = process.communicate(stdin)
    seconds = time.perf_counter() - started
    memory.done.set()
    memory.join()
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]} failed with status {process.returncode}:\n{stderr.decode()[-2000:]}")
    return Measured(seconds, stdout.decode(), stderr.decode(), memory.peak_mb())


def sesguard_command() -> list[str]:
    found = shutil.which("sesguard")
    return [found] if found else [sys.executable, "-m", "bot"]


def ensure_jq() -> str:
    found = shutil.which("jq")
    if found:
        return ""
    print("jq is not installed: installing it with apt-get (jq from Debian) …", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "jq"], check=True, stdout=subprocess.DEVNULL)
    return "jq was installed by this run (apt-get install -y jq)"


@dataclass
class Tool:
    label: str
    command: list[str]
    stdin: bytes
    count: callable  # Measured -> matching records found

    def __post_init__(self):
        self.runs: list[Measured] = []

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def peak_mb(self) -> float:
        return max(run.peak_mb for run in self.runs)

    @property
    def found(self) -> set[int]:
        return {self.count(run) for run in self.runs}


def _sesguard_matched(run: Measured) -> int:
    for line in run.stderr.splitlines():
        if line.startswith("scanned "):
            return int(line.split(": ", 1)[1].split(" matched", 1)[0])
    raise SystemExit(f"sesguard printed no summary line:\n{run.stderr[-2000:]}")


def _sesguard_records(run: Measured) -> int:
    line = next(line for line in run.stderr.splitlines() if line.startswith("scanned "))
    return int(line.split()[1])


def tools(trail: Generated, data: Path, jobs: list[int]) -> list[Tool]:
    listing = b"\0".join(str(path).encode() for path in trail.files)
    target = str(data / "AWSLogs")
    empty = data / "empty"
    empty.mkdir(exist_ok=True)
    found = [Tool("sesguard start-up only", [*sesguard_command(), "scan", "--json", str(empty)], b"", lambda run: None)]
    found += [
        Tool(f"sesguard scan --jobs {n}", [*sesguard_command(), "scan", "--json", "--jobs", str(n), target], b"",
             _sesguard_matched)
        for n in jobs
    ]
    found.append(Tool("zcat > /dev/null", ["bash", "-c", "xargs -0 zcat -- > /dev/null"], listing, lambda run: None))
    jq_script = 'xargs -0 zcat -- | jq -r "$1" | wc -l'
    found.append(Tool("zcat | jq", ["bash", "-o", "pipefail", "-c", jq_script, "jq", JQ_FILTER], listing,
                      lambda run: int(run.stdout.strip())))
    found.append(Tool("duckdb read_json", [sys.executable, "-c", DUCKDB_SCRIPT, DUCKDB_SQL], listing,
                      lambda run: int(run.stdout.strip())))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000, help="records in the trail (default 200,000)")
    parser.add_argument("--ses-share", type=float, default=0.001,
                        help="share of SES / Service Quotas calls (default 0.001)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool; the median is shown (default 3)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="where the trail is written (default bench/data)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["jq", "duckdb"], help="tools to leave out")
    args = parser.parse_args(argv)

    notes = [] if "jq" in args.skip else [note for note in [ensure_jq()] if note]
    started = time.perf_counter()
    trail = generate(args.data, args.records, args.ses_share)
    print(f"trail: {trail.records:,} records in {len(trail.files):,} files, "
          f"{trail.raw_bytes / trail.records:,.0f} bytes a record, {trail.raw_bytes / 1e6:,.0f} MB "
          f"({trail.gz_bytes / 1e6:,.0f} MB gzipped), {trail.matching:,} matching calls "
          f"[{time.perf_counter() - started:.1f} s to generate or reuse, in {args.data}]")
    cores = os.cpu_count() or 1
    selected = [tool for tool in tools(trail, args.data, sorted({1, cores}))
                if not any(skip in tool.label for skip in args.skip)]
    # Rounds interleave the tools, so that a slow moment of the machine does not land on one tool.
    for round_number in range(args.runs):
        for tool in selected:
            tool.runs.append(measure(tool.command, tool.stdin, cwd=args.data))
        print(f"  round {round_number + 1}/{args.runs} done", file=sys.stderr)

    report(trail, selected, cores)
    for note in notes:
        print(f"note: {note}")
    return check(trail, selected)


def report(trail: Generated, selected: list[Tool], cores: int) -> None:
    ours = next(tool for tool in selected if tool.label == f"sesguard scan --jobs {cores}")
    print(f"\n{'tool':<24} {'wall s':>8} {'records/s':>12} {'MB/s (raw)':>11} {'vs sesguard':>12} "
          f"{'peak RSS MB':>12}  matching")
    for tool in selected:
        if tool.label == "sesguard start-up only":
            print(f"{tool.label:<24} {tool.seconds:>8.3f} {'':>12} {'':>11} {tool.seconds / ours.seconds:>11.2f}x "
                  f"{tool.peak_mb:>12,.0f}")
            continue
        found = tool.found
        shown = "-" if found == {None} else ", ".join(f"{n:,}" for n in sorted(found))
        print(f"{tool.label:<24} {tool.seconds:>8.3f} {trail.records / tool.seconds:>12,.0f} "
              f"{trail.raw_bytes / 1e6 / tool.seconds:>11,.0f} {tool.seconds / ours.seconds:>11.2f}x "
              f"{tool.peak_mb:>12,.0f}  {shown}")
    print(f"\n(median of {len(ours.runs)} runs; {cores} cores; "
          f"generator's answer: {trail.matching:,} matching records; "
          "start-up only: the same command on an empty folder, Python and imports)")


def check(trail: Generated, selected: list[Tool]) -> int:
    failures = []
    for tool in selected:
        found = tool.found - {None}
        if found and found != {trail.matching}:
            failures.append(f"{tool.label} found {sorted(found)} matching records, the trail has {trail.matching}")
        if tool.label.startswith("sesguard scan"):
            records = {_sesguard_records(run) for run in tool.runs}
            if records != {trail.records}:
                failures.append(f"{tool.label} counted {sorted(records)} records, the trail has {trail.records}")
    for failure in failures:
        print(f"MISMATCH: {failure}")
    if not failures:
        print("all tools found the same matching records as the generator put in")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
