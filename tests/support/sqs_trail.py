"""A CloudTrail bucket that notifies an SQS queue with a dead-letter queue, on moto's server, and the messages S3
and EventBridge put on it: for the queue's tests and the backfill's."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from urllib.parse import quote_plus

import boto3

from bot.worker.ingest.consume import QueueConsumer
from tests.support.local_aws import OWN_ACCOUNT

DAY = datetime.now(UTC).strftime("%Y/%m/%d")


class Trail:
    """A trail bucket that notifies a queue (with a dead-letter queue behind it), all names of its own."""

    def __init__(self, url: str, visibility: int = 30, max_receives: int = 3):
        self.sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=url)
        self.s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url)
        name = f"trail-{uuid.uuid4().hex[:12]}"
        self.bucket = name
        self.dlq_url = self.sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        redrive = {"deadLetterTargetArn": self.arn(self.dlq_url), "maxReceiveCount": str(max_receives)}
        self.queue_url = self.sqs.create_queue(QueueName=name, Attributes={
            "VisibilityTimeout": str(visibility), "RedrivePolicy": json.dumps(redrive)})["QueueUrl"]
        arn = self.arn(self.queue_url)
        self.s3.create_bucket(Bucket=name)
        self.s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})

    def arn(self, queue_url: str) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]

    def key(self, name: str, account: str = OWN_ACCOUNT, region: str = "us-east-1") -> str:
        return f"AWSLogs/o-abcdefghij/{account}/CloudTrail/{region}/{DAY}/{account}_CloudTrail_{region}_{name}.json.gz"

    def put_log(self, name: str, records: list[dict], **where) -> str:
        key = self.key(name, **where)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=gzip.compress(json.dumps({"Records": records}).encode()))
        return key

    def put(self, key: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def send(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)

    def counts(self, url: str | None = None) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url or self.queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead_letters(self) -> list[str]:
        answer = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [message["Body"] for message in answer.get("Messages", [])]


def consumer(settings, store) -> QueueConsumer:
    return QueueConsumer(settings, store, wait_seconds=1)


def notification(bucket: str, key: str) -> str:
    """An S3 event notification as S3 writes it (the key URL-encoded)."""
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": "ObjectCreated:Put",
        "eventTime": "2026-12-02T10:00:00.000Z",
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": 100}}}]})


def eventbridge(record: dict) -> str:
    return json.dumps({"version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail",
                       "source": "aws.ses", "account": record["recipientAccountId"], "time": record["eventTime"],
                       "region": record["awsRegion"], "resources": [], "detail": record})
