"""Least privilege both ways: the templates' roles allow exactly the AWS calls sesguard's code makes, nothing
missing and nothing extra, per role.

The calls are gathered from the code itself (`bot/` and `detection/`), not from a list kept by hand:
- the services: every `….client("<service>")` with a literal name;
- the operations: every attribute named after an operation of those services in botocore's service model
  (`client.receive_message(…)`, or `client.start_query_execution` passed on to be called), and every
  `get_paginator("<operation>")`. A name that two of the services share (`get_query_results`: Athena and
  CloudTrail Lake) is resolved by the clients the module itself creates.

Operations map to IAM actions as `<signing name>:<OperationName>`, except where AWS authorises them otherwise:
- SQS's `DeleteMessageBatch` and `ChangeMessageVisibilityBatch` are authorised as `sqs:DeleteMessage` and
  `sqs:ChangeMessageVisibility` (SQS has no batch actions in IAM);
- S3's `ListObjectsV2` is authorised as `s3:ListBucket`;
- STS's `GetCallerIdentity` needs no permission (AWS documents that even an explicit deny does not stop it), so
  the templates do not grant it;
- some calls make AWS act with the caller's permissions, which the caller's policy must then allow too:
  Athena's `StartQueryExecution` reads the table's definition from Glue (`glue:GetDatabase`, `glue:GetTable`)
  and writes the result file (`s3:PutObject`, `s3:AbortMultipartUpload`, after `s3:GetBucketLocation` and
  `s3:ListBucket` on the result bucket); `GetQueryResults` reads it (`s3:GetObject`); S3's `GetObject` of a
  file encrypted with SSE-KMS needs `kms:Decrypt` on its key.

Which role makes which call: sesguard's own role (sesguard-role.yaml) makes them all: its own account is
polled, investigated and contained with its own credentials. In a member account, sesguard acts through the read
role (member-read-role.yaml): it reads CloudTrail there with the clients `detection/sources/lookup.py` builds
from the assumed role, and contains there with the IAM client `bot/contain/` builds; those two places are
declared below, and any other module that assumes a role fails this test until it is declared.
"""

from __future__ import annotations

import ast
from pathlib import Path

import botocore.session
from botocore import xform_name

from tests.support.deploy_stacks import deploy, role_actions

ROOT = Path(__file__).resolve().parents[2]
CODE = [path for package in ("bot", "detection") for path in sorted((ROOT / package).rglob("*.py"))]

# IAM actions that are not the operation's own name.
AUTHORISED_AS = {
    ("sqs", "DeleteMessageBatch"): {"sqs:DeleteMessage"},
    ("sqs", "ChangeMessageVisibilityBatch"): {"sqs:ChangeMessageVisibility"},
    ("s3", "ListObjectsV2"): {"s3:ListBucket"},
    ("sts", "GetCallerIdentity"): set(),
}
# What AWS does with the caller's permissions when it serves the call.
ALSO_NEEDS = {
    ("athena", "StartQueryExecution"): {"glue:GetDatabase", "glue:GetTable", "s3:PutObject",
                                        "s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:ListBucket"},
    ("athena", "GetQueryResults"): {"s3:GetObject"},
    ("s3", "GetObject"): {"kms:Decrypt"},
}
# The triage context's reads of an account's IAM (SPEC §10), in the read role and in sesguard's own.
CONTEXT = {"iam:ListUserTags", "iam:ListRoleTags", "iam:ListAccessKeys", "iam:GetAccessKeyLastUsed"}
# Where sesguard acts in a member account through the read role: (path prefix, service) → the role's part.
THROUGH_MEMBER_ROLE = {("detection/sources/lookup.py", "cloudtrail"): "read", ("bot/context/", "iam"): "read",
                       ("bot/contain/", "iam"): "contain"}


def _models() -> dict[str, dict[str, str]]:
    """For every service sesguard creates a client of: python method name → the operation's name."""
    session = botocore.session.get_session()
    services = {call for path in CODE for call in _client_services(ast.parse(path.read_text()))}
    return {service: {xform_name(op): op for op in session.get_service_model(service).operation_names}
            for service in services}


def _client_services(tree: ast.AST) -> set[str]:
    return {node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)}


def operations_in_code() -> dict[tuple[str, str], set[str]]:
    """(service, operation) → the modules (relative paths) that make that call."""
    models = _models()
    found: dict[tuple[str, str], set[str]] = {}
    for path in CODE:
        tree = ast.parse(path.read_text())
        relative = path.relative_to(ROOT).as_posix()
        own = _client_services(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == \
                    "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                name = node.args[0].value
            elif isinstance(node, ast.Attribute):
                name = node.attr
            else:
                continue
            services = [service for service, methods in models.items() if name in methods]
            if len(services) > 1:
                services = [service for service in services if service in own]
            assert len(services) <= 1, f"{relative}: {name} could be any of {services}; say which client makes it"
            for service in services:
                found.setdefault((service, models[service][name]), set()).add(relative)
    return found


def iam_actions(service: str, operation: str) -> set[str]:
    prefix = botocore.session.get_session().get_service_model(service).signing_name
    actions = AUTHORISED_AS.get((service, operation), {f"{prefix}:{operation}"})
    return actions | ALSO_NEEDS.get((service, operation), set())


def needed(where=None) -> set[str]:
    """The IAM actions of the calls made (only those `where(module, service)` picks, when given)."""
    return {action for (service, operation), modules in operations_in_code().items()
            for action in iam_actions(service, operation)
            if where is None or any(where(module, service) for module in modules)}


def member_part(part: str):
    return lambda module, service: any(module.startswith(prefix) and service == declared and kind == part
                                       for (prefix, declared), kind in THROUGH_MEMBER_ROLE.items())


def test_the_calls_gathered_from_the_code_are_the_ones_sesguard_makes():
    """The gathering itself: the calls each capability is known for are found where they are made."""
    found = operations_in_code()
    assert found[("sqs", "ReceiveMessage")] == {"bot/worker/ingest/consume.py"}
    assert found[("cloudtrail", "LookupEvents")] == {"detection/sources/lookup.py"}
    assert found[("organizations", "ListAccounts")] == {"detection/sources/organizations.py"}
    assert found[("iam", "ListAccessKeys")] == {"bot/contain/access_key.py", "bot/context/lookups.py"}
    assert found[("identitystore", "DescribeUser")] == {"bot/context/lookups.py"}
    assert found[("athena", "GetQueryResults")] == {"detection/sources/sql/athena.py"}
    assert found[("cloudtrail", "GetQueryResults")] == {"detection/sources/sql/lake.py"}
    assert found[("sts", "AssumeRole")] == {"detection/sources/lookup.py", "bot/contain/access.py"}


def test_only_the_declared_places_act_in_member_accounts():
    """A module that assumes a role acts somewhere else: it must be one of the declared places."""
    assumers = operations_in_code()[("sts", "AssumeRole")]
    assert all(any(module.startswith(prefix) for prefix, _ in THROUGH_MEMBER_ROLE) for module in assumers), assumers


def test_sesguard_s_own_role_allows_exactly_the_calls_the_code_makes(admin_session, unique):
    """Every part of the role switched on (each parameter naming what it works on)."""
    role = f"sesguard-worker-{unique}"
    deploy(admin_session, "sesguard-role.yaml", f"role-{unique}", RoleName=role,
           ExtraRoleArns="arn:aws:iam::111122223333:role/legacy-reader",
           QueueArn="arn:aws:sqs:us-east-1:111122223333:sesguard-events", TrailBucketName="org-trail",
           TrailKmsKeyArn="arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
           AthenaWorkgroup="sesguard", AthenaTable="security.cloudtrail", AthenaOutputBucket="athena-results",
           LakeEventDataStoreArn="arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/EXAMPLE",
           Containment="true", IdentityCenter="true")
    granted = role_actions(admin_session.client("iam"), role)
    allowed = set().union(*granted.values())
    expected = needed()
    assert allowed - expected == set(), "granted, never called"
    assert expected - allowed == set(), "called, never granted"
    assert not any("*" in action for action in allowed)


def test_sesguard_s_own_role_without_containment_cannot_change_iam(admin_session, unique):
    role = f"sesguard-worker-{unique}"
    deploy(admin_session, "sesguard-role.yaml", f"role-{unique}", RoleName=role)
    allowed = set().union(*role_actions(admin_session.client("iam"), role).values())
    assert allowed == {"cloudtrail:LookupEvents", "sts:AssumeRole", "organizations:ListAccounts"} | CONTEXT
    assert not allowed & (needed(member_part("contain")) - CONTEXT)


def test_the_member_read_role_allows_exactly_the_reads_and_with_containment_exactly_the_containment(
        admin_session, unique):
    iam = admin_session.client("iam")
    granted = {}
    for containment in ("false", "true"):
        role = f"sesguard-reader-{containment}-{unique}"
        deploy(admin_session, "member-read-role.yaml", f"reader-{containment}-{unique}", RoleName=role,
               SesguardRoleArn="arn:aws:iam::111122223333:role/sesguard-worker", Containment=containment)
        granted[containment] = role_actions(iam, role)
    read, contain = needed(member_part("read")), needed(member_part("contain"))
    assert read == {"cloudtrail:LookupEvents"} | CONTEXT
    assert contain == {"iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:GetRolePolicy", "iam:PutRolePolicy"}
    assert granted["false"] == {"sesguard-read": read}
    assert granted["true"] == {"sesguard-read": read, "sesguard-contain": contain}
