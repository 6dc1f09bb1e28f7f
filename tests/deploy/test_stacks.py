"""Each deploy/ template deployed into moto's CloudFormation (over real HTTP), and sesguard then working with
what the stacks created: it consumes from the queue the queue stack made, running as the role sesguard's role
stack made, and reaches the members' accounts through the role the StackSet put there.

moto's CloudFormation leaves out three kinds of resource: AWS::CloudFormation::StackSet, AWS::SQS::QueuePolicy
and AWS::Events::EventBus's Policy (the policies are checked in test_templates.py), and a custom resource's
function, which moto would run in Docker. For the first, the test passes the StackSet resource's own properties
to moto's StackSet API (which deploys the member template into each account of the organisational units); for
the last, the test runs the template's inline code with the event CloudFormation sends, as Lambda would."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from sqlmodel import select

from bot.contain import access_key, names
from bot.contain.access import iam_client
from bot.contain.action import DONE
from bot.worker.ingest.consume import QueueConsumer
from detection.sources.organizations import list_active_accounts
from detection.store import EventRow
from tests.support.deploy_stacks import (
    DEPLOY,
    custom_resource_code,
    deploy,
    outputs,
    role_actions,
    run_stack_set,
    session_in,
)
from tests.support.local_aws import ses_calls, user, worker_settings
from tests.support.sqs_trail import DAY, eventbridge

REGION = "us-east-1"


def stored_event_ids(store) -> list[str]:
    with store.session() as session:
        return sorted(session.exec(select(EventRow.event_id)))


def stored_accounts(store) -> list[str]:
    with store.session() as session:
        return sorted(set(session.exec(select(EventRow.account_id))))


def use_credentials(monkeypatch, session: boto3.Session) -> None:
    """Run sesguard with these credentials, as the platform hands them to its processes."""
    credentials = session.get_credentials().get_frozen_credentials()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", credentials.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", credentials.secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", credentials.token)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # boto3.client() keeps the first credentials it read


def organisation(session: boto3.Session, members: int = 2) -> tuple[str, str, list[str]]:
    """An organisation run from the session's account: its ID, one OU, and `members` accounts in it."""
    organizations = session.client("organizations")
    organization_id = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    root = organizations.list_roots()["Roots"][0]["Id"]
    ou = organizations.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    accounts = []
    for index in range(members):
        status = organizations.create_account(AccountName=f"member{index}",
                                              Email=f"member{index}@example.invalid")["CreateAccountStatus"]
        accounts.append(status["AccountId"])
        organizations.move_account(AccountId=status["AccountId"], SourceParentId=root, DestinationParentId=ou)
    return organization_id, ou, accounts


def upload(session: boto3.Session, bucket: str, name: str) -> tuple[str, str]:
    """deploy/<name> in a bucket, as the README says to do before the StackSet wrapper; its URL and text."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=bucket)
    body = (DEPLOY / name).read_text()
    s3.put_object(Bucket=bucket, Key=name, Body=body.encode())
    return f"https://{bucket}.s3.{REGION}.amazonaws.com/{name}", s3.get_object(Bucket=bucket, Key=name)["Body"].read(
        ).decode()


def test_the_queue_stack_makes_a_queue_with_its_dead_letter_queue_that_sesguard_consumes(
        admin_session, unique, sqlite_store, monkeypatch):
    made = deploy(admin_session, "queue.yaml", f"queue-{unique}", QueueName=f"sesguard-{unique}",
                  CentralBusName="sesguard", TrailBucketName=f"trail-{unique}")
    sqs = admin_session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=made["QueueUrl"], AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == made["DeadLetterQueueArn"] and int(redrive["maxReceiveCount"]) == 5
    assert attributes["VisibilityTimeout"] == "120" and attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    # (moto's CloudFormation leaves the dead-letter queue's RedriveAllowPolicy out: test_templates.py reads it)

    [call] = ses_calls(user("mallory"), 1)
    sqs.send_message(QueueUrl=made["QueueUrl"], MessageBody=eventbridge(call))
    use_credentials(monkeypatch, admin_session)
    settings = worker_settings(database_url=sqlite_store.url, source="sqs", sqs_queue_url=made["QueueUrl"],
                               learning_days=0)
    drained = QueueConsumer(settings, sqlite_store, wait_seconds=1).drain()
    assert (drained.stored, drained.signals, drained.unusable) == (1, 1, 0)
    assert stored_event_ids(sqlite_store) == [call["eventID"]]


def test_sesguard_runs_as_the_role_its_stack_made_and_consumes_the_queue_stack_s_queue(
        admin_session, fresh_account, unique, sqlite_store, monkeypatch):
    queue = deploy(admin_session, "queue.yaml", f"queue-{unique}", QueueName=f"sesguard-{unique}")
    made = deploy(admin_session, "sesguard-role.yaml", f"role-{unique}", RoleName=f"sesguard-worker-{unique}",
                  QueueArn=queue["QueueArn"])
    role_arn = made["SesguardRoleArn"]
    assert role_arn == f"arn:aws:iam::{fresh_account}:role/sesguard-worker-{unique}"
    iam = admin_session.client("iam")
    trust = iam.get_role(RoleName=f"sesguard-worker-{unique}")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert set(role_actions(iam, f"sesguard-worker-{unique}")) == {
        "sesguard-own-account", "sesguard-read-roles", "sesguard-organizations", "sesguard-queue"}

    # The platform (an ECS task here) assumes the role and hands sesguard its credentials.
    as_sesguard = session_in(fresh_account, f"sesguard-worker-{unique}")
    identity = as_sesguard.client("sts").get_caller_identity()
    assert identity["Arn"].startswith(f"arn:aws:sts::{fresh_account}:assumed-role/sesguard-worker-{unique}/")
    [call] = ses_calls(user("mallory"), 1)
    admin_session.client("sqs").send_message(QueueUrl=queue["QueueUrl"], MessageBody=eventbridge(call))
    use_credentials(monkeypatch, as_sesguard)
    settings = worker_settings(database_url=sqlite_store.url, source="sqs", sqs_queue_url=queue["QueueUrl"],
                               learning_days=0)
    assert QueueConsumer(settings, sqlite_store, wait_seconds=1).drain().stored == 1
    assert stored_event_ids(sqlite_store) == [call["eventID"]]


@pytest.mark.parametrize("containment", ["false", "true"])
def test_the_read_role_stackset_puts_the_role_in_every_member_account_and_sesguard_assumes_it_there(
        admin_session, fresh_account, unique, monkeypatch, containment):
    _, ou, members = organisation(admin_session)
    url, body = upload(admin_session, f"templates-{unique}", "member-read-role.yaml")
    own = deploy(admin_session, "sesguard-role.yaml", f"role-{unique}", RoleName=f"sesguard-worker-{unique}",
                 ReadRoleName=f"sesguard-reader-{unique}", Containment=containment)
    wrapper = {"TemplateURL": url, "OrganizationalUnitIds": ou, "RoleName": f"sesguard-reader-{unique}",
               "SesguardRoleArn": own["SesguardRoleArn"], "Containment": containment}
    deploy(admin_session, "member-read-role-stackset.yaml", f"readers-{unique}", **wrapper)
    stack_set = run_stack_set(admin_session, "member-read-role-stackset.yaml", wrapper, body)
    assert stack_set["create"]["PermissionModel"] == "SERVICE_MANAGED"
    assert stack_set["create"]["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    assert stack_set["group"]["Regions"] == [REGION]

    as_sesguard = session_in(fresh_account, f"sesguard-worker-{unique}")
    use_credentials(monkeypatch, as_sesguard)
    listing = list_active_accounts(boto3.Session(), REGION)  # sesguard's own listing of the organisation
    assert set(members) <= set(listing.active)
    settings = worker_settings(org_role_name=f"sesguard-reader-{unique}")
    expected = {"sesguard-read"} | ({"sesguard-contain"} if containment == "true" else set())
    for member in members:
        iam = iam_client(member, settings)  # sesguard assumes the member's role, as containment does
        assumed = iam._get_credentials().get_frozen_credentials()  # the credentials sesguard's client signs with
        identity = boto3.client("sts", aws_access_key_id=assumed.access_key, aws_secret_access_key=assumed.secret_key,
                                aws_session_token=assumed.token).get_caller_identity()
        assert identity["Arn"].startswith(f"arn:aws:sts::{member}:assumed-role/sesguard-reader-{unique}/")
        role = iam.get_role(RoleName=f"sesguard-reader-{unique}")["Role"]
        assert role["Arn"] == f"arn:aws:iam::{member}:role/sesguard-reader-{unique}"
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": own["SesguardRoleArn"]}
        assert set(role_actions(iam, f"sesguard-reader-{unique}")) == expected

    if containment == "true":  # sesguard's Deactivate access key, through the StackSet's role
        member = members[0]
        as_member = session_in(member, "admin")
        as_member.client("iam").create_user(UserName="mallory")
        key = as_member.client("iam").create_access_key(UserName="mallory")["AccessKey"]["AccessKeyId"]
        keys = access_key.Keys(names.iam_user(f"arn:aws:iam::{member}:user/mallory", member), (key,))
        outcome = access_key.contain(keys, iam_client(member, settings), now=datetime.now(UTC))
        assert outcome.kind == DONE, outcome
        [state] = as_member.client("iam").list_access_keys(UserName="mallory")["AccessKeyMetadata"]
        assert state["Status"] == "Inactive"


def test_a_member_s_ses_call_reaches_the_queue_through_the_forwarding_stackset_and_the_central_bus(
        admin_session, fresh_account, unique, sqlite_store, monkeypatch):
    organization_id, ou, members = organisation(admin_session)
    queue = deploy(admin_session, "queue.yaml", f"queue-{unique}", QueueName=f"sesguard-{unique}",
                   CentralBusName=f"sesguard-{unique}")
    bus = deploy(admin_session, "central-bus.yaml", f"bus-{unique}", BusName=f"sesguard-{unique}",
                 OrganizationId=organization_id, QueueArn=queue["QueueArn"])
    assert bus["CentralBusArn"] == f"arn:aws:events:{REGION}:{fresh_account}:event-bus/sesguard-{unique}"
    url, body = upload(admin_session, f"templates-{unique}", "member-forwarding.yaml")
    wrapper = {"TemplateURL": url, "OrganizationalUnitIds": ou, "Regions": f"{REGION},eu-west-1",
               "CentralBusArn": bus["CentralBusArn"], "ForwardRoleName": f"sesguard-forward-{unique}"}
    deploy(admin_session, "member-forwarding-stackset.yaml", f"forwarding-{unique}", **wrapper)
    run_stack_set(admin_session, "member-forwarding-stackset.yaml", wrapper, body)

    member = members[1]
    as_member = session_in(member, "admin", region="eu-west-1")
    [rule] = as_member.client("events").list_rules(EventBusName="default", NamePrefix="sesguard-ses")["Rules"]
    assert rule["State"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    [target] = as_member.client("events").list_targets_by_rule(Rule="sesguard-ses")["Targets"]
    assert target["Arn"] == bus["CentralBusArn"]
    assert target["RoleArn"] == f"arn:aws:iam::{member}:role/sesguard-forward-{unique}"
    # One role per account, made by the stack of RoleRegion alone (IAM is global).
    forward = as_member.client("iam").get_role(RoleName=f"sesguard-forward-{unique}")["Role"]
    assert forward["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}

    # CloudTrail hands the member's calls to its default bus in eu-west-1; an EC2 call is not forwarded.
    [call] = ses_calls(user("mallory", account=member), 1, account=member, region="eu-west-1")
    as_member.client("events").put_events(Entries=[
        {"Source": "aws.ses", "DetailType": "AWS API Call via CloudTrail", "Detail": json.dumps(call)},
        {"Source": "aws.ec2", "DetailType": "AWS API Call via CloudTrail",
         "Detail": json.dumps(dict(call, eventSource="ec2.amazonaws.com", eventID=str(uuid.uuid4())))}])

    use_credentials(monkeypatch, admin_session)
    # moto delivers the event without its `account` (its default input template leaves the field out), which
    # sesguard requires to be the record's (an event put by another account is no CloudTrail's). EventBridge
    # delivers the whole event, `account` the member's across buses: the message is put back as AWS sends it.
    sqs = admin_session.client("sqs")
    [message] = sqs.receive_message(QueueUrl=queue["QueueUrl"], WaitTimeSeconds=5)["Messages"]
    event = json.loads(message["Body"])
    assert (event["source"], event["detail"]["eventID"], event.get("account")) == ("aws.ses", call["eventID"], None)
    sqs.delete_message(QueueUrl=queue["QueueUrl"], ReceiptHandle=message["ReceiptHandle"])
    sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody=json.dumps({**event, "account": member}))
    settings = worker_settings(database_url=sqlite_store.url, source="sqs", sqs_queue_url=queue["QueueUrl"],
                               learning_days=0)
    drained = QueueConsumer(settings, sqlite_store, wait_seconds=1).drain()
    assert (drained.received, drained.stored, drained.signals) == (1, 1, 1), drained.problems
    assert stored_event_ids(sqlite_store) == [call["eventID"]] and stored_accounts(sqlite_store) == [member]


def test_the_trail_bucket_notifies_the_queue_beside_its_other_notifications_and_sesguard_reads_the_file(
        admin_session, fresh_account, unique, sqlite_store, monkeypatch, moto_aws):
    s3, sqs = admin_session.client("s3"), admin_session.client("sqs")
    bucket = f"org-trail-{unique}"
    s3.create_bucket(Bucket=bucket)
    queue = deploy(admin_session, "queue.yaml", f"queue-{unique}", QueueName=f"sesguard-{unique}",
                   TrailBucketName=bucket)
    other = sqs.create_queue(QueueName=f"someone-else-{unique}")["QueueUrl"]
    other_arn = sqs.get_queue_attributes(QueueUrl=other, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    theirs = {"Id": "archive-indexer", "QueueArn": other_arn, "Events": ["s3:ObjectRemoved:*"]}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [theirs]})

    stack = f"notify-{unique}"
    cfn = admin_session.client("cloudformation")
    cfn.create_stack(StackName=stack, TemplateBody=(DEPLOY / "trail-bucket-notifications.yaml").read_text(),
                     Capabilities=["CAPABILITY_IAM"], Parameters=[
                         {"ParameterKey": "TrailBucketName", "ParameterValue": bucket},
                         {"ParameterKey": "QueueArn", "ParameterValue": queue["QueueArn"]}])
    [described] = cfn.describe_stacks(StackName=stack)["Stacks"]
    assert described["StackStatus"] == "CREATE_IN_PROGRESS"  # waiting for the custom resource's answer
    function = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="NotificationsFunction")
    handler = custom_resource_code("trail-bucket-notifications.yaml")
    properties = {"ServiceToken": function["StackResourceDetail"]["PhysicalResourceId"], "BucketName": bucket,
                  "KeyPrefix": "", "QueueArn": queue["QueueArn"], "ConfigurationId": "sesguard"}

    def invoke(request_type: str, **extra) -> None:
        """As Lambda runs the function for CloudFormation: the event, and its answer to the ResponseURL."""
        handler.handler({"RequestType": request_type, "StackId": described["StackId"],
                         "RequestId": str(uuid.uuid4()), "LogicalResourceId": "TrailBucketNotification",
                         "ResourceType": "Custom::BucketNotification", "ResourceProperties": properties,
                         "ResponseURL": f"{moto_aws}/cloudformation_{REGION}/cfnresponse?stack={described['StackId']}",
                         **extra}, None)

    use_credentials(monkeypatch, admin_session)
    invoke("Create")
    assert "NotificationId" in outputs(admin_session, stack)  # CREATE_COMPLETE on the function's answer
    configurations = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert [c["Id"] for c in configurations] == ["archive-indexer", "sesguard"]
    [ours] = [c for c in configurations if c["Id"] == "sesguard"]
    assert ours["QueueArn"] == queue["QueueArn"] and ours["Events"] == ["s3:ObjectCreated:*"]
    rules = {rule["Name"].lower(): rule["Value"] for rule in ours["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "AWSLogs/", "suffix": ".json.gz"}

    # A log file lands; S3 notifies the queue; sesguard reads the file the message names.
    calls = ses_calls(user("mallory", account=fresh_account), 2, account=fresh_account)
    key = f"AWSLogs/o-abcdefghij/{fresh_account}/CloudTrail/{REGION}/{DAY}/{fresh_account}_CloudTrail_x.json.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(json.dumps({"Records": calls}).encode()))
    s3.put_object(Bucket=bucket, Key="elsewhere/notes.txt", Body=b"not a log file")
    settings = worker_settings(database_url=sqlite_store.url, source="sqs", sqs_queue_url=queue["QueueUrl"],
                               learning_days=0, trail_buckets=[bucket])  # the buckets sesguard may read
    drained = QueueConsumer(settings, sqlite_store, wait_seconds=1).drain()
    # The log file's message, and S3's s3:TestEvent from when the configuration was put; notes.txt is outside the
    # configuration's prefix and suffix, so S3 never notified it.
    assert (drained.received, drained.stored, drained.ignored, drained.unusable) == (2, 1, 1, 0)
    assert stored_event_ids(sqlite_store) == sorted(call["eventID"] for call in calls)

    invoke("Update", OldResourceProperties=dict(properties))  # a repeated Update replaces, never doubles
    assert [c["Id"] for c in s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]] == [
        "archive-indexer", "sesguard"]
    invoke("Delete")
    assert s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"] == [theirs]
