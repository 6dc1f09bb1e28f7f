"""An SES attack as CloudTrail tells it, for the investigation tests (SPEC §6), relative to now.

mallory's long-term key enumerates SES in two regions (the alert), then sends mail, switches sending on
and creates a second access key, which it goes on to use; before the enumeration it checked who it was
and sent one test mail. Around it: an EC2 session that is also called `mallory` (LookupEvents by Username
returns it too), other users with their own keys, and mallory's own calls outside the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.support import records
from tests.support.local_aws import OWN_ACCOUNT

KEY = "AKIAMALLORYKEY000001"
NEW_KEY = "AKIAMALLORYNEWKEY002"
IP = "198.51.100.66"
FOLLOW_ON = ["ses:SendEmail", "ses:UpdateAccountSendingEnabled", "iam:CreateAccessKey"]


def when(now: datetime, minutes_ago: float) -> str:
    return (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def call(identity: dict, name: str, now: datetime, minutes_ago: float, *, source: str = "ses.amazonaws.com",
         write: bool = False, region: str = "us-east-1", **kw) -> dict:
    record = records.record(identity, name, time=when(now, minutes_ago), source=source, region=region,
                            account=OWN_ACCOUNT, **kw)
    record["readOnly"] = not write
    return record


@dataclass
class Story:
    now: datetime
    enumeration: list[dict] = field(default_factory=list)  # the alert
    other: list[dict] = field(default_factory=list)  # mallory's other calls in the window
    outside: list[dict] = field(default_factory=list)  # mallory's, before the window
    unrelated: list[dict] = field(default_factory=list)

    @property
    def everything(self) -> list[dict]:
        return self.enumeration + self.other + self.outside + self.unrelated


def mallory(name: str = "mallory", key: str = KEY) -> dict:
    return records.iam_user(name, account=OWN_ACCOUNT, key=key)


def attack(now: datetime | None = None, name: str = "mallory", unrelated: int = 300, second_region: str | None = None,
           **overrides) -> Story:
    """The story; with `second_region`, one enumeration call is made there; `overrides` replace fields of
    every call mallory makes (hostile values, say)."""
    now = now or datetime.now(UTC)
    story = Story(now)
    me, new_key = mallory(name), mallory(name, NEW_KEY)

    def mine(identity: dict, event: str, minutes_ago: float, **kw) -> dict:
        return {**call(identity, event, now, minutes_ago, ip=IP, **kw), **overrides}

    story.enumeration = [mine(me, "GetSendQuota", 50), mine(me, "ListIdentities", 49.9),
                         mine(me, "GetAccount", 49.8, region=second_region or "us-east-1")]
    story.other = [
        mine(me, "GetCallerIdentity", 58, source="sts.amazonaws.com"),
        mine(me, "SendEmail", 57, write=True),  # before the enumeration: not follow-on
        *[mine(me, "ListUsers", 48 - i, source="iam.amazonaws.com", error="AccessDenied") for i in range(3)],
        *[mine(me, "SendEmail", 40 - i, write=True) for i in range(3)],
        mine(me, "UpdateAccountSendingEnabled", 39, write=True),
        mine(me, "CreateAccessKey", 38, source="iam.amazonaws.com", write=True),
        *[mine(new_key, "ListBuckets", 30 - i, source="s3.amazonaws.com") for i in range(2)],
    ]
    story.outside = [mine(me, "CreateUser", 60 * 3, source="iam.amazonaws.com", write=True)]
    namesake = records.ec2_role(session=name, account=OWN_ACCOUNT)
    story.unrelated = [call(namesake, "CreateAccessKey", now, 35, source="iam.amazonaws.com", write=True),
                       call(namesake, "SendEmail", now, 34, write=True)]
    for index in range(unrelated):
        person = records.iam_user(f"user{index % 30}", account=OWN_ACCOUNT, key=f"AKIAOTHERUSERKEY{index % 30:04d}")
        name_of_call = ("SendEmail", "CreateUser", "DescribeInstances")[index % 3]
        source = {"SendEmail": "ses.amazonaws.com", "CreateUser": "iam.amazonaws.com",
                  "DescribeInstances": "ec2.amazonaws.com"}[name_of_call]
        story.unrelated.append(call(person, name_of_call, now, 55 - index * 0.1, source=source,
                                    write=name_of_call != "DescribeInstances"))
    return story
