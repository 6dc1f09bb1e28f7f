"""The rule: which CloudTrail records are Amazon SES enumeration, and which callers never count.

Reads like SPEC §1 "Matching calls" and "Excluded callers". Every helper takes the raw record (a dict
as CloudTrail wrote it) and never assumes a field exists: all of them are attacker-shaped input.
"""

from __future__ import annotations

from typing import Any

METADATA: dict[str, Any] = {
    "id": "sesguard-ses-enumeration-new-identity",
    "title": "Amazon SES enumeration by a previously unseen identity",
    "mitre": {"tactic": "TA0007 Discovery", "technique": "T1526 Cloud Service Discovery"},
    "default_severity": "medium",
    "description": (
        "An identity that has not been seen calling these APIs in this account listed SES identities or "
        "checked the sending quota. Attackers holding stolen AWS keys do this first, to learn whether the "
        "account can send phishing and spam through SES."
    ),
    "references": [
        "https://attack.mitre.org/techniques/T1526/",
        "https://attack.mitre.org/tactics/TA0007/",
        ("https://docs.datadoghq.com/security/default_rules/ "
         "(Cloud SIEM: Amazon SES enumeration by a previously unseen user)"),
        "https://stratus-red-team.cloud/attack-techniques/AWS/aws.discovery.ses-enumerate/",
        "https://permiso.io/blog/s/aws-ses-pionage-detecting-ses-abuse/",
    ],
    "false_positives": [
        "AWS Trusted Advisor and other AWS services checking SES quotas (excluded: service-linked roles, "
        "AWSService callers, calls invoked by an AWS service).",
        "A new engineer opening the SES console (severity low: every call came from a console session).",
        "New CI jobs or infrastructure code reading SES settings (keyed by role, so it alerts once).",
    ],
    "triage": [
        "Ask the person behind the identity whether they made these calls (Contact user).",
        "Check where the calls came from: source IPs, user agents, regions. Unknown IPs, scripting user "
        "agents and many regions in minutes point to stolen keys.",
        "Look for SES sending right after: SendEmail, SendRawEmail, CreateEmailIdentity, "
        "UpdateAccountSendingEnabled, PutAccountDetails (a request to leave the SES sandbox).",
        "If the calls were not expected: deactivate the access key or revoke the role sessions, and escalate.",
    ],
}

SES_SOURCE = "ses.amazonaws.com"
SERVICE_QUOTAS_SOURCE = "servicequotas.amazonaws.com"
EVENT_SOURCES = (SES_SOURCE, SERVICE_QUOTAS_SOURCE)

# SES v1 and v2 both log ses.amazonaws.com.
SES_ENUMERATION_CALLS = frozenset(
    {
        "GetAccount",
        "GetAccountSendingEnabled",
        "ListIdentities",
        "ListEmailIdentities",
        "GetSendQuota",
        "GetIdentityVerificationAttributes",
    }
)
SERVICE_QUOTAS_CALL = "ListServiceQuotas"

# The console signs in through this principal; its calls are a person's, not a service's.
CONSOLE_PRINCIPALS = frozenset({"signin.amazonaws.com", "console.amazonaws.com"})
SERVICE_LINKED_ROLE_PATH = "/aws-service-role/"


def _object(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def matches(record: dict) -> bool:
    """Is this record one of the SES enumeration calls (successful or failed)?"""
    source = record.get("eventSource")
    name = record.get("eventName")
    if not isinstance(name, str):  # a list or object here would not even be hashable
        return False
    if source == SES_SOURCE:
        return name in SES_ENUMERATION_CALLS
    if source == SERVICE_QUOTAS_SOURCE and name == SERVICE_QUOTAS_CALL:
        return _object(record.get("requestParameters")).get("serviceCode") == "ses"
    return False


def role_path(role_arn: Any) -> str | None:
    """`/aws-service-role/trustedadvisor.amazonaws.com/` from an IAM role ARN; None if not a role ARN."""
    if not isinstance(role_arn, str):
        return None
    _, sep, resource = role_arn.partition(":role/")
    if not sep:
        return None
    path, _, _name = resource.rpartition("/")
    return "/" + path + "/" if path else "/"


def session_issuer_arn(identity: dict) -> Any:
    return _object(_object(identity.get("sessionContext")).get("sessionIssuer")).get("arn")


def is_service_principal(principal: Any) -> bool:
    return (
        isinstance(principal, str)
        and principal.endswith(".amazonaws.com")
        and principal not in CONSOLE_PRINCIPALS
    )


def is_service_linked_role(identity: dict) -> bool:
    path = role_path(session_issuer_arn(identity))
    if path is not None:
        return path.startswith(SERVICE_LINKED_ROLE_PATH)
    # Without a session issuer (older or trimmed records) the role name still tells: every
    # service-linked role is named AWSServiceRoleFor…, a name customers cannot create.
    arn = identity.get("arn")
    if isinstance(arn, str) and ":assumed-role/" in arn:
        return arn.split(":assumed-role/", 1)[1].startswith("AWSServiceRoleFor")
    return False


def is_excluded_caller(record: dict) -> bool:
    """AWS acting on its own behalf: never signals, never learned."""
    identity = _object(record.get("userIdentity"))
    if identity.get("type") == "AWSService":
        return True
    if is_service_principal(identity.get("invokedBy")):
        return True
    return identity.get("type") == "AssumedRole" and is_service_linked_role(identity)
