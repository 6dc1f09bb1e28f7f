"""What an SQS message of the worker's queue asks for (SPEC §7): pure functions, no AWS call.

Two kinds of message carry CloudTrail:
- an S3 event notification for a CloudTrail log object (`{"Records": [{"eventSource": "aws:s3", …}]}`),
  sent by the trail bucket directly or inside an SNS envelope (`{"Type": "Notification", "Message": "…"}`,
  when the trail notifies a topic and the queue subscribes without raw delivery): the object is to be read;
- an EventBridge event "AWS API Call via CloudTrail", whose `detail` is the CloudTrail record itself.

`s3:TestEvent` (S3 sends one when a notification is configured), objects that are no CloudTrail log file
(digest files, CloudTrail Insights, anything else) and EventBridge events of other kinds are ignored:
read, understood, nothing to do. Anything else cannot be used: the consumer leaves it to the queue's
redrive policy. Every field is checked before it is used: a bucket name and a key go to S3, nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

import orjson

from detection.sources.inputs import is_log_file

API_CALL = "AWS API Call via CloudTrail"
AWS_SOURCE_PREFIX = "aws."  # reserved to AWS: PutEvents refuses it
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html (3–63 characters)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
MAX_KEY_BYTES = 1024  # S3's longest key
# A CloudTrail log file's key: …/AWSLogs/[o-id/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>
_LOG_KEY = re.compile(
    r"(.*/)?AWSLogs/(o-[a-z0-9]{10,32}/)?(?P<account>\d{12})/CloudTrail/[a-z0-9-]+/\d{4}/\d{2}/\d{2}/[^/]+")

OBJECTS, EVENT, IGNORED, UNUSABLE = "objects", "event", "ignored", "unusable"


@dataclass
class Parsed:
    kind: str  # OBJECTS | EVENT | IGNORED | UNUSABLE
    objects: list[tuple[str, str]] = field(default_factory=list)  # (bucket, key) to read
    record: dict | None = None  # EVENT: the CloudTrail record
    why: str = ""  # IGNORED / UNUSABLE: in words, for the log


def parse_message(body: object) -> Parsed:
    """What to do with one message's body."""
    if not isinstance(body, str):
        return Parsed(UNUSABLE, why="the message has no body")
    document = _json(body)
    if (isinstance(document, dict) and document.get("Type") == "Notification"
            and isinstance(document.get("Message"), str)):
        document = _json(document["Message"])  # an SNS envelope
    if not isinstance(document, dict):
        return Parsed(UNUSABLE, why="not a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return Parsed(IGNORED, why="s3:TestEvent")
    if "detail-type" in document:
        return _eventbridge(document)
    if isinstance(document.get("Records"), list):
        return _s3_notification(document["Records"])
    return Parsed(UNUSABLE, why="neither an S3 event notification nor an EventBridge CloudTrail event")


def _json(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _mapping(value: object) -> dict:
    """A JSON object as itself, anything else as an empty one (a field of the wrong type is a missing one)."""
    return value if isinstance(value, dict) else {}


def _eventbridge(event: dict) -> Parsed:
    kind = event.get("detail-type")
    if kind != API_CALL:
        return Parsed(IGNORED, why=f"an EventBridge event of another kind ({str(kind)[:80]})")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return Parsed(UNUSABLE, why="an EventBridge CloudTrail event without a detail object")
    forged = _not_cloudtrails(event, detail)
    if forged:
        return Parsed(UNUSABLE, why=f"an event that is not CloudTrail's: {forged}")
    return Parsed(EVENT, record=detail)


def _not_cloudtrails(event: dict, detail: dict) -> str:
    """Why an "AWS API Call via CloudTrail" event was not put by CloudTrail (empty when it was).

    Every account of the organisation may put events on the central bus, with any detail-type and any detail.
    What it cannot forge: EventBridge refuses `PutEvents` a `source` that begins with `aws.`, and stamps
    `account` with the sender's own. So an event is CloudTrail's only with an `aws.` source and an `account`
    that is the account the record says received the call."""
    source, account = event.get("source"), event.get("account")
    if not isinstance(source, str) or not source.startswith(AWS_SOURCE_PREFIX):
        return f"its source {str(source)[:80]!r} is not an AWS service's (custom events cannot use aws.*)"
    recipient = detail.get("recipientAccountId")
    if not isinstance(account, str) or not isinstance(recipient, str) or account != recipient:
        return (f"it was sent from account {str(account)[:20]}, and its record names account "
                f"{str(recipient)[:20]} (EventBridge stamps the sender's account)")
    return ""


def _s3_notification(records: list) -> Parsed:
    objects: list[tuple[str, str]] = []
    skipped = 0
    for record in records:
        if not isinstance(record, dict) or record.get("eventSource") != "aws:s3":
            return Parsed(UNUSABLE, why="a Records list that is not an S3 event notification")
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            skipped += 1  # a deletion, a restore, …: nothing new to read
            continue
        s3 = _mapping(record.get("s3"))
        bucket, key = _mapping(s3.get("bucket")).get("name"), _mapping(s3.get("object")).get("key")
        if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket) or not isinstance(key, str):
            return Parsed(UNUSABLE, why="an S3 event notification without a valid bucket name and key")
        key = unquote_plus(key)  # S3 URL-encodes the key in notifications (a space is "+")
        if not key or len(key.encode()) > MAX_KEY_BYTES or "\x00" in key:
            return Parsed(UNUSABLE, why="an S3 event notification with an impossible key")
        if not is_cloudtrail_log(key):
            skipped += 1
            continue
        if (bucket, key) not in objects:
            objects.append((bucket, key))
    if not objects:
        return Parsed(IGNORED, why=f"no CloudTrail log file among its {skipped} objects (digest files, …)")
    return Parsed(OBJECTS, objects=objects)


def is_trail_bucket(name: str) -> bool:
    """A valid S3 bucket name (for the settings that name trail buckets)."""
    return bool(_BUCKET.fullmatch(name))


def key_account(key: str) -> str | None:
    """The account a CloudTrail log file's key names (`…/AWSLogs/[o-id/]<account>/CloudTrail/…`): CloudTrail
    writes each account's records under its own folder, so a record of another account in it is forged."""
    match = _LOG_KEY.fullmatch(key)
    return match["account"] if match else None


def is_cloudtrail_log(key: str) -> bool:
    """A CloudTrail log file (not a digest, not CloudTrail Insights, not a stranger's object)."""
    return bool(_LOG_KEY.fullmatch(key)) and is_log_file(key)
