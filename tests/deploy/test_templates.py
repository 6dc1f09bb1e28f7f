"""The deploy/ templates as files: cfn-lint finds nothing in any of them (errors, warnings or informational), every
parameter is described in the template and in deploy/README.md, and what moto's CloudFormation leaves out (the
queue's and the bus's policies, the dead-letter queue's redrive permission) says what the README's policies say."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.support.deploy_stacks import DEPLOY, template

TEMPLATES = sorted(path.name for path in DEPLOY.glob("*.yaml"))
SES_PATTERN = {"detail-type": ["AWS API Call via CloudTrail"],
               "detail": {"eventSource": ["ses.amazonaws.com", "servicequotas.amazonaws.com"]}}


def resources(name: str, kind: str) -> dict[str, dict]:
    return {logical: r for logical, r in template(name)["Resources"].items() if r["Type"] == kind}


def test_the_templates_are_the_ones_the_readme_lists():
    assert TEMPLATES == ["central-bus.yaml", "member-forwarding-stackset.yaml", "member-forwarding.yaml",
                         "member-read-role-stackset.yaml", "member-read-role.yaml", "queue.yaml", "sesguard-role.yaml",
                         "trail-bucket-notifications.yaml"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_cfn_lint_finds_nothing(name):
    matches = lint_file(Path(DEPLOY / name), ManualArgs(include_checks=["I"]))
    assert [f"{m.linenumber}: {m.rule.id} {m.message}" for m in matches] == []


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_parameter_is_described_in_the_template_and_in_the_readme(name):
    readme = (DEPLOY / "README.md").read_text()
    decoded = template(name)
    assert decoded.get("Description") and f"`{name}`" in readme
    for parameter, spec in decoded.get("Parameters", {}).items():
        assert len(spec.get("Description", "")) > 10, f"{name}: {parameter} has no description"
        assert f"`{parameter}`" in readme, f"deploy/README.md does not name {name}'s {parameter}"


def test_the_stacksets_are_service_managed_with_automatic_deployment():
    for name in ("member-read-role-stackset.yaml", "member-forwarding-stackset.yaml"):
        [stack_set] = resources(name, "AWS::CloudFormation::StackSet").values()
        properties = stack_set["Properties"]
        assert properties["PermissionModel"] == "SERVICE_MANAGED"
        assert properties["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}


def test_containment_is_off_unless_asked_for():
    for name in ("member-read-role.yaml", "member-read-role-stackset.yaml", "sesguard-role.yaml"):
        assert template(name)["Parameters"]["Containment"]["Default"] == "false"
    [policy] = [r for r in resources("member-read-role.yaml", "AWS::IAM::Policy").values()
                if r["Properties"]["PolicyName"] == "sesguard-contain"]
    assert policy["Condition"] == "WithContainment"


def test_the_members_rules_see_read_only_calls_and_the_central_rule_sees_what_they_forward():
    [member_rule] = resources("member-forwarding.yaml", "AWS::Events::Rule").values()
    assert member_rule["Properties"]["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    assert member_rule["Properties"]["EventPattern"] == SES_PATTERN
    [central_rule] = resources("central-bus.yaml", "AWS::Events::Rule").values()
    assert central_rule["Properties"]["State"] == "ENABLED"
    assert central_rule["Properties"]["EventPattern"] == SES_PATTERN


def test_the_central_bus_lets_only_the_organisation_put_events():
    [bus] = resources("central-bus.yaml", "AWS::Events::EventBus").values()
    [statement] = bus["Properties"]["Policy"]["Statement"]
    assert statement["Action"] == "events:PutEvents" and statement["Principal"] == "*"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}}


def test_the_queue_lets_only_the_trail_bucket_and_the_central_rule_send_and_only_it_redrives():
    [policy] = resources("queue.yaml", "AWS::SQS::QueuePolicy").values()
    bucket, rule = [branch["Fn::If"][1] for branch in policy["Properties"]["PolicyDocument"]["Statement"]]
    assert bucket["Principal"] == {"Service": "s3.amazonaws.com"} and bucket["Action"] == "sqs:SendMessage"
    assert bucket["Condition"]["ArnEquals"] == {"aws:SourceArn": {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${TrailBucketName}"}}
    assert "aws:SourceAccount" in bucket["Condition"]["StringEquals"]
    assert rule["Principal"] == {"Service": "events.amazonaws.com"} and rule["Action"] == "sqs:SendMessage"
    assert rule["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"].endswith(
        ":rule/${CentralBusName}/${CentralRuleName}")
    queues = resources("queue.yaml", "AWS::SQS::Queue")
    assert queues["Queue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert template("queue.yaml")["Parameters"]["MaxReceiveCount"]["Default"] == 5
    allowed = queues["DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"]
    assert allowed["redrivePermission"] == "byQueue" and len(allowed["sourceQueueArns"]) == 1
