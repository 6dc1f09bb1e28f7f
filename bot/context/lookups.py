"""The read-only calls behind the triage context, each cached (`bot.context.cache`) and each failing as
`LookupFailed` with the reason the alert shows ("unknown (iam:GetAccessKeyLastUsed denied: …)").

IAM (in the signal's account): `iam:ListUserTags`, `iam:ListRoleTags`, `iam:ListAccessKeys`,
`iam:GetAccessKeyLastUsed`. IAM Identity Center (with sesguard's own credentials): `sso:ListInstances`,
`identitystore:GetUserId`, `identitystore:DescribeUser`. Slack: `users.lookupByEmail`. IAM requests are
paced per account through the store (`IAM_PER_SECOND`), shared by every process, as LookupEvents' are.
No endpoint is named here: boto3 honours AWS_ENDPOINT_URL_IAM, _SSO_ADMIN and _IDENTITYSTORE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.context.access import CLIENT_CONFIG
from bot.context.cache import LookupFailed, cached
from bot.slack.client import CONNECTION_ERRORS
from detection.pacing import RequestPacer
from detection.sources.pulled import describe_aws_error
from detection.store import Store

# IAM's control plane throttles per account; a handful a second leaves room for everything else in it.
IAM_PER_SECOND = 5
DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
          "InvalidClientTokenId", "ExplicitDeny"}
MAX_TAG_PAGES = 5  # an IAM principal has at most 50 tags: one page, a few for safety
EMAILS_SHOWN = 3


def _failed(call: str, exc: Exception) -> LookupFailed:
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    return LookupFailed(f"{call} {'denied' if code in DENIED else 'failed'}: {describe_aws_error(exc)}")


class Iam:
    """IAM reads in one account, paced and cached."""

    def __init__(self, store: Store, session: boto3.Session, account_id: str, pacer: RequestPacer):
        self.store, self.account_id = store, account_id
        self.client = session.client("iam", config=CLIENT_CONFIG)
        key = f"iam:{account_id}"
        # before-send fires for every HTTP request (retries included): none escapes the pace.
        self.client.meta.events.register("before-send.iam", lambda **_: self._wait(pacer, key))

    @staticmethod
    def _wait(pacer: RequestPacer, key: str) -> None:
        pacer.wait_turn(key)  # a handler that returns a value would replace the HTTP response

    def _call(self, call: str, subject: str, fetch) -> dict:
        def guarded() -> dict:
            try:
                return fetch()
            except (ClientError, BotoCoreError) as exc:
                raise _failed(call, exc) from None

        return cached(self.store, f"{call}:{self.account_id}:{subject}", guarded)

    def user_tags(self, user: str) -> dict[str, str]:
        return self._call("iam:ListUserTags", user, lambda: self._tags(self.client.list_user_tags, UserName=user))

    def role_tags(self, role: str) -> dict[str, str]:
        return self._call("iam:ListRoleTags", role, lambda: self._tags(self.client.list_role_tags, RoleName=role))

    def _tags(self, operation: Callable[..., dict], **params: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        marker = None
        for _ in range(MAX_TAG_PAGES):
            page = operation(**params, **({"Marker": marker} if marker else {}))
            for tag in page.get("Tags", []):
                tags.setdefault(str(tag.get("Key", "")), str(tag.get("Value", "")))
            marker = page.get("Marker") if page.get("IsTruncated") else None
            if not marker:
                break
        return tags

    def access_keys(self, user: str) -> dict[str, dict[str, str | None]]:
        """{key ID: {"created", "status"}} of the user's access keys."""
        def fetch() -> dict:
            keys: dict[str, dict[str, str | None]] = {}
            for page in self.client.get_paginator("list_access_keys").paginate(UserName=user):
                for key in page.get("AccessKeyMetadata", []):
                    keys[str(key.get("AccessKeyId"))] = {"created": _iso(key.get("CreateDate")),
                                                         "status": str(key.get("Status", ""))}
            return keys

        return self._call("iam:ListAccessKeys", user, fetch)

    def last_used(self, key_id: str) -> dict[str, Any]:
        """{"date" (None: never used), "service", "region", "user"} of `iam:GetAccessKeyLastUsed`."""
        def fetch() -> dict:
            answer = self.client.get_access_key_last_used(AccessKeyId=key_id)
            used = answer.get("AccessKeyLastUsed", {})
            return {"date": _iso(used.get("LastUsedDate")), "service": str(used.get("ServiceName", "")),
                    "region": str(used.get("Region", "")), "user": str(answer.get("UserName", ""))}

        return self._call("iam:GetAccessKeyLastUsed", key_id, fetch)


def identity_store_emails(store: Store, session: boto3.Session, regions: list[str], user_name: str) -> list[str]:
    """The e-mail addresses (primary first) of the IAM Identity Center user signed in as `user_name`; [] when
    the Identity Store has no such user. LookupFailed when it cannot be asked."""
    instance = cached(store, "sso:ListInstances", lambda: _instance(session, regions))
    if not instance.get("store"):
        raise LookupFailed("no IAM Identity Center instance is visible to sesguard's own account "
                           f"(sso:ListInstances in {', '.join(regions)[:200]})")
    identity_store, region = str(instance["store"]), str(instance["region"])

    def fetch() -> dict:
        client = session.client("identitystore", region_name=region, config=CLIENT_CONFIG)
        try:
            found = client.get_user_id(IdentityStoreId=identity_store, AlternateIdentifier={
                "UniqueAttribute": {"AttributePath": "userName", "AttributeValue": user_name}})
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return {"emails": []}
            raise _failed("identitystore:GetUserId", exc) from None
        except BotoCoreError as exc:
            raise _failed("identitystore:GetUserId", exc) from None
        try:
            user = client.describe_user(IdentityStoreId=identity_store, UserId=found["UserId"])
        except (ClientError, BotoCoreError) as exc:
            raise _failed("identitystore:DescribeUser", exc) from None
        emails = sorted((e for e in user.get("Emails", []) if isinstance(e, dict) and e.get("Value")),
                        key=lambda e: not e.get("Primary"))
        return {"emails": [str(e["Value"]) for e in emails[:EMAILS_SHOWN]]}

    return list(cached(store, f"identitystore:user:{identity_store}:{user_name}", fetch)["emails"])


def _instance(session: boto3.Session, regions: list[str]) -> dict:
    """IAM Identity Center's instance: the first region that lists one (it lives in one region)."""
    problems = []
    for region in regions:
        try:
            answer = session.client("sso-admin", region_name=region, config=CLIENT_CONFIG).list_instances()
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"{region}: {describe_aws_error(exc)}")
            continue
        for instance in answer.get("Instances", []):
            if instance.get("IdentityStoreId") and instance.get("Status", "ACTIVE") == "ACTIVE":
                return {"store": str(instance["IdentityStoreId"]), "region": region}
    if problems:
        raise LookupFailed(f"sso:ListInstances failed: {'; '.join(problems)[:300]}")
    return {}


def slack_user_by_email(store: Store, client: WebClient, email: str) -> str | None:
    """The Slack user ID with this e-mail, None when there is none; LookupFailed when Slack cannot say."""
    def fetch() -> dict:
        try:
            return {"user": str(client.users_lookupByEmail(email=email)["user"]["id"])}
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return {"user": None}
            raise LookupFailed(f"users.lookupByEmail failed: {exc.response.get('error')}") from None
        except CONNECTION_ERRORS as exc:
            raise LookupFailed(f"users.lookupByEmail failed: {type(exc).__name__}") from None

    user = cached(store, f"slack:lookupByEmail:{email.lower()}", fetch).get("user")
    return str(user) if user else None


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime) else None
