"""A local CloudTrail LookupEvents and STS endpoint over real HTTP, enforcing the real API's rules.

boto3 reaches it through AWS_ENDPOINT_URL_CLOUDTRAIL and AWS_ENDPOINT_URL_STS. It speaks the protocols
botocore's models of `cloudtrail` and `sts` name (today awsJson1.1 and awsQuery), and awsJson1.1 for STS as
well: `aws_protocol.Router` reads each request and writes each answer and error in the protocol the request
came in, so the rules below are kept once, on params and outputs of one form. Every request must carry a valid
SigV4 signature: the stand-in recomputes it with botocore's own signer, over the request's own method, path
and query string, from the secret of the access key it names (a long-term key added with `add_account`, or
session credentials it issued), so a wrong secret, a changed body or a stale date is refused as AWS refuses
it. The caller's account is the one its access key belongs to. AssumeRole hands out per-account session
credentials that expire, for 900 seconds up to the role's maximum session duration (3600 by default, 43200 at
most). LookupEvents answers as AWS does: exactly one LookupAttribute (EventSource, AccessKeyId or Username, as
AWS fills them), MaxResults 1…50, newest first, NextToken pagination tied to the query, StartTime/EndTime
inclusive, only the last 90 days, ReadOnly "true" for read-only calls only, and ThrottlingException beyond 2
accepted requests in any one-second window per account and region. Every request is recorded (time of arrival,
account, region, answer, params, protocol) so that tests assert on what crossed the wire. Faults can be
queued, for any request or only for first or later pages: throttling, expired credentials, a 500, a malformed
answer, or a request held until the test releases it.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.aws_protocol import AwsError, Call, HttpAnswer, HttpRequest, Router, Server, Service

MAX_RESULTS = 50
LIMIT = 2
WINDOW = 1.0
# https://docs.aws.amazon.com/awscloudtrail/latest/userguide/view-cloudtrail-events.html: "the last 90 days".
HISTORY = timedelta(days=90)
# https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html: DurationSeconds from 900 to the
# role's maximum session duration, which is 3600 unless set, and at most 43200.
MIN_SESSION, DEFAULT_SESSION, MAX_SESSION = 900, 3600, 43200
_ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html: a signed request is valid for
# 15 minutes after its X-Amz-Date (and AWS allows the same skew ahead).
SIGNATURE_PATIENCE = timedelta(minutes=15)
_AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                            r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), "
                            r"?Signature=(?P<sig>[0-9a-f]{64})$")
# STS's awsJson target prefix (the Smithy service name): its model names only awsQuery, yet a client may speak
# awsJson1.1 to it as to every service here.
STS_TARGET_PREFIX = "AWSSecurityTokenServiceV20110615"
# How each service refuses a request it cannot authenticate: (missing, unknown key, bad signature, status).
_REFUSALS = {
    "cloudtrail": ("MissingAuthenticationTokenException", "UnrecognizedClientException", "InvalidSignatureException",
                   400),
    "sts": ("MissingAuthenticationToken", "InvalidClientTokenId", "SignatureDoesNotMatch", 403),
}


@dataclass
class Recorded:
    at: float  # the stand-in's clock (time.time() unless a test gave another) on arrival
    service: str  # "cloudtrail" | "sts"
    action: str
    account: str | None
    region: str | None
    access_key: str | None
    status: int
    error: str | None = None
    params: dict = field(default_factory=dict)
    protocol: str = ""  # the wire protocol it came in: "json", "query", "rest-json", "smithy-rpc-v2-cbor"

    @property
    def event_source(self) -> str | None:
        """The EventSource a LookupEvents request asked for (None for other requests and other attributes)."""
        return _event_source(self.params)


@dataclass
class Fault:
    # throttle | expired | error500 | denied (AccessDeniedException: not retried) | malformed | hold | pass (answered
    # normally: to target a later request)
    kind: str
    account: str | None = None  # None: any account
    event_source: str | None = None  # None: a query of any EventSource
    first_page: bool | None = None  # True: only requests without NextToken; False: only those with one
    release: threading.Event | None = None  # "hold": the test sets it to let the request go on
    reached: threading.Event = field(default_factory=threading.Event)  # a request took this fault
    message: str | None = None  # the error's message instead of AWS's usual one

    def applies(self, account: str, params: dict) -> bool:
        return (self.account in (None, account)
                and self.event_source in (None, _event_source(params))
                and self.first_page in (None, not params.get("NextToken")))


@dataclass
class Role:
    account: str
    max_session_seconds: int = DEFAULT_SESSION


@dataclass
class SessionKey:
    account: str
    secret: str
    token: str | None
    expires_at: float | None  # None: long-term key


class FakeCloudTrail:
    def __init__(self, session_seconds: float | None = None, limit: int = LIMIT, latency: float = 0.0,
                 clock: Callable[[], float] = time.time):
        self.limit = limit  # accepted requests per second per account and region (AWS: 2)
        # The clock of arrivals, and so of the rate limit: a test that paces its requests on a clock of its
        # own (tests/support/clocks.py) hands it here too, so that the limit is kept on the same time line.
        self.clock = clock
        self.latency = latency  # seconds each LookupEvents answer takes, after its arrival is recorded
        self.keys: dict[str, SessionKey] = {}
        self.roles: dict[str, Role] = {}
        self.events: dict[tuple[str, str], list[dict]] = {}  # (account, region) → records
        self.requests: list[Recorded] = []
        # The LookupEvents requests of each account and region, in arrival order: the rate check reads the
        # last second of one place rather than every request ever made (a pass over 500 × 17 is 17,000).
        self._by_place: dict[tuple[str, str | None], list[Recorded]] = {}
        self.faults: deque[Fault] = deque()
        # Time made short for a test, by name: issued credentials expire after this many seconds, whatever
        # DurationSeconds asked for (AWS's shortest is 900).
        self.session_seconds = session_seconds
        self._tokens: dict[str, tuple[str, int]] = {}  # NextToken → (query fingerprint, offset)
        self._lock = threading.RLock()
        self.router = Router(Service("cloudtrail"), Service("sts", legacy_target_prefix=STS_TARGET_PREFIX))
        self._server: Server | None = None

    # ── set-up ───────────────────────────────────────────────────────────────────────────────────

    def add_account(self, account: str, access_key: str, secret: str) -> None:
        """A long-term access key of `account`: requests signed with `secret` are its own."""
        with self._lock:
            self.keys[access_key] = SessionKey(account, secret, None, None)

    def add_role(self, role_arn: str, max_session_seconds: int = DEFAULT_SESSION) -> None:
        """A role the base credentials may assume; its maximum session duration is 3600 to 43200 seconds."""
        assert DEFAULT_SESSION <= max_session_seconds <= MAX_SESSION, max_session_seconds
        with self._lock:
            self.roles[role_arn] = Role(role_arn.split(":")[4], max_session_seconds)

    def add_events(self, *records: dict) -> None:
        """Deliver records: from now on LookupEvents returns them (a late event is one added late)."""
        with self._lock:
            for record in records:
                key = (record["recipientAccountId"], record["awsRegion"])
                self.events.setdefault(key, []).append(record)

    def inject(self, kind: str, times: int = 1, account: str | None = None, event_source: str | None = None,
               first_page: bool | None = None, message: str | None = None) -> Fault:
        """Answer the next `times` LookupEvents requests (of `account`, of a query for `event_source`, only
        first or only later pages) with a fault (an error's text: `message`, when given). "hold" keeps the
        request waiting until `.release` is set; `.reached` of the first fault is set once a request took it."""
        release = threading.Event() if kind == "hold" else None
        faults = [Fault(kind, account, event_source, first_page, release, message=message) for _ in range(times)]
        with self._lock:
            self.faults.extend(faults)
        return faults[0]

    def expire_sessions(self) -> None:
        """Every session credential handed out so far expires now."""
        with self._lock:
            for key in self.keys.values():
                if key.expires_at is not None:
                    key.expires_at = time.time() - 1

    # ── what was seen ────────────────────────────────────────────────────────────────────────────

    def lookups(self, account: str | None = None, region: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.action == "LookupEvents"
                    and (account is None or r.account == account) and (region is None or r.region == region)]

    def forget_requests(self) -> None:
        """What was seen so far is let go (a benchmark's passes count afresh; the limit's last second goes too)."""
        with self._lock:
            self.requests.clear()
            self._by_place.clear()

    def busiest_window(self) -> int:
        """The most LookupEvents requests that arrived for one account and region in any 1-second window."""
        by_key: dict[tuple, list[float]] = {}
        for request in self.lookups():
            by_key.setdefault((request.account, request.region), []).append(request.at)
        most = 0
        for times in by_key.values():
            times.sort()
            for i, start in enumerate(times):
                most = max(most, sum(1 for t in times[i:] if t - start < WINDOW))
        return most

    # ── serving ──────────────────────────────────────────────────────────────────────────────────

    def start(self) -> str:
        self._server = Server(self.handle)
        return self._server.start()

    def stop(self) -> None:
        with self._lock:
            for fault in self.faults:
                if fault.release is not None:
                    fault.release.set()
        if self._server is not None:
            self._server.stop()

    def handle(self, request: HttpRequest) -> HttpAnswer:
        arrived = self.clock()
        call = self.router.route(request)
        match = _AUTHORIZATION.match(request.headers.get("Authorization", ""))
        access_key, region = (match["key"], match["region"]) if match else (None, None)
        record = Recorded(arrived, call.service or "", call.operation or "", None, region, access_key, 0,
                          params=call.params, protocol=call.protocol)
        with self._lock:
            self.requests.append(record)  # recorded on arrival, so that the rate check sees it at once
        with self._lock:
            refused = self._unauthenticated(record, match, request)
        if refused is None and call.refusal is not None:
            record.error, refused = call.refusal.code, call.refusal
        if refused is not None:
            answer = self.router.error(call, refused)
        elif call.service == "cloudtrail":
            if self.latency:
                time.sleep(self.latency)
            answer = self._cloudtrail(record, call, request.headers)
        else:
            answer = self._sts(record, call, request.headers)
        record.status = answer.status
        return answer

    # ── SigV4 ────────────────────────────────────────────────────────────────────────────────────

    def _unauthenticated(self, record: Recorded, match, request: HttpRequest) -> AwsError | None:
        """The error AWS answers when it would refuse the request's signature; None when it is valid."""
        missing, unknown, mismatch, status = _REFUSALS.get(record.service, _REFUSALS["cloudtrail"])
        if match is None:
            record.error = missing
            return AwsError(missing, "Request is missing Authentication Token", status)
        key = self.keys.get(match["key"])
        if key is None:
            record.error = unknown
            return AwsError(unknown, "The security token included in the request is invalid.", status)
        if not _signed_in_time(request.headers.get("X-Amz-Date", ""), match["date"]):
            record.error = mismatch
            return AwsError(mismatch, "Signature expired or not yet valid", status)
        if not hmac.compare_digest(_signature(key, match, request), match["sig"]):
            record.error = mismatch
            return AwsError(mismatch, "The request signature we calculated does not match the signature you "
                                      "provided. Check your AWS Secret Access Key and signing method.", status)
        return None

    def _caller(self, record: Recorded, headers) -> str | None:
        """The caller's account, or the error code that refuses it."""
        key = self.keys.get(record.access_key or "")
        if key is None:
            record.error = "UnrecognizedClientException"
            return None
        if key.token is not None and headers.get("X-Amz-Security-Token") != key.token:
            record.error = "InvalidClientTokenId"
            return None
        if key.expires_at is not None and time.time() >= key.expires_at:
            record.error = "ExpiredTokenException"
            record.account = key.account
            return None
        record.account = key.account
        return key.account

    # ── CloudTrail ───────────────────────────────────────────────────────────────────────────────

    def _cloudtrail(self, record: Recorded, call: Call, headers) -> HttpAnswer:
        with self._lock:
            account = self._caller(record, headers)
            if account is None:
                return self._refuse(record, call, AwsError(record.error, "The security token included in the "
                                                                         "request is invalid or expired"))
            self._by_place.setdefault((account, record.region), []).append(record)
            fault = self._take_fault(account, record.params)
        while fault is not None and fault.kind in ("hold", "pass"):  # answered normally (after the release)
            if fault.release is None:
                fault = None
                break
            fault.release.wait(timeout=60)
            with self._lock:  # a held request meets what was injected meanwhile, as one arriving now would
                fault = self._take_fault(account, record.params)
        with self._lock:
            if fault is not None:
                return self._fault_answer(record, call, fault)
            try:
                if call.operation != "LookupEvents":
                    raise AwsError("UnknownOperationException", f"{call.operation} is not served here")
                if self._throttled(record):
                    raise AwsError("ThrottlingException", "Rate exceeded")
                return self.router.answer(call, self._lookup(record, account, record.params))
            except AwsError as error:
                return self._refuse(record, call, error)

    def _refuse(self, record: Recorded, call: Call, error: AwsError) -> HttpAnswer:
        record.error = error.code
        return self.router.error(call, error)

    def _take_fault(self, account: str, params: dict) -> Fault | None:
        for fault in self.faults:
            if fault.applies(account, params):
                self.faults.remove(fault)
                fault.reached.set()
                return fault
        return None

    def _fault_answer(self, record: Recorded, call: Call, fault: Fault) -> HttpAnswer:
        errors = {
            "throttle": AwsError("ThrottlingException", "Rate exceeded"),
            "expired": AwsError("ExpiredTokenException", "The security token included in the request is expired"),
            "error500": AwsError("InternalFailure", "internal failure", 500),
            "denied": AwsError("AccessDeniedException", "User is not authorized to perform: cloudtrail:LookupEvents"),
        }
        if fault.kind in errors:
            error = errors[fault.kind]
            answer = self.router.error(call, AwsError(error.code, fault.message or error.message, error.status))
        else:  # malformed: a page cut short, in whatever protocol the request came in
            whole = self.router.answer(call, {"Events": [{"CloudTrailEvent": "true"}]})
            answer = HttpAnswer(whole.status, whole.headers, whole.body[:len(whole.body) // 2])
        record.error = fault.kind
        return answer

    def _throttled(self, record: Recorded) -> bool:
        """Beyond `limit` (2) accepted requests in the last second for this account and region (throttled
        requests do not count, as a token bucket takes no token for them)."""
        accepted = 0
        for earlier in reversed(self._by_place.get((record.account, record.region), [])):
            if record.at - earlier.at >= WINDOW + 1.0:  # arrivals are appended nearly in order: a second's slack
                break
            accepted += earlier.error is None and earlier is not record and 0 <= record.at - earlier.at < WINDOW
        return accepted >= self.limit

    def _lookup(self, record: Recorded, account: str, params: dict) -> dict:
        """LookupEvents' answer, or the AwsError AWS gives for its params."""
        attributes = params.get("LookupAttributes") or []
        if len(attributes) != 1:
            raise AwsError("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.")
        attribute = attributes[0]
        matches = _ATTRIBUTES.get(attribute.get("AttributeKey"))
        if matches is None:
            raise AwsError("InvalidLookupAttributesException", f"only {', '.join(_ATTRIBUTES)} are served here")
        size = params.get("MaxResults", MAX_RESULTS)
        if not isinstance(size, int) or not 1 <= size <= MAX_RESULTS:
            raise AwsError("InvalidMaxResultsException", "MaxResults must be between 1 and 50")
        start, end = params.get("StartTime"), params.get("EndTime")
        if start is not None and end is not None and start > end:
            raise AwsError("InvalidTimeRangeException", "StartTime is after EndTime")
        fingerprint = json.dumps([account, record.region, attribute, start, end], sort_keys=True)
        offset = 0
        if params.get("NextToken"):
            known = self._tokens.get(params["NextToken"])
            if known is None or known[0] != fingerprint:
                raise AwsError("InvalidNextTokenException", "Invalid NextToken")
            offset = known[1]
        oldest = time.time() - HISTORY.total_seconds()
        matching = [
            r for r in self.events.get((account, record.region), [])
            if matches(r) == attribute.get("AttributeValue") and _epoch(r["eventTime"]) >= oldest
            and (start is None or _epoch(r["eventTime"]) >= start) and (end is None or _epoch(r["eventTime"]) <= end)
        ]
        matching.sort(key=lambda r: (_epoch(r["eventTime"]), r["eventID"]), reverse=True)  # newest first
        page = matching[offset:offset + size]
        answer: dict = {"Events": [_lookup_entry(r) for r in page]}
        if offset + size < len(matching):
            token = secrets.token_urlsafe(24)
            self._tokens[token] = (fingerprint, offset + size)
            answer["NextToken"] = token
        return answer

    # ── STS ──────────────────────────────────────────────────────────────────────────────────────

    def _sts(self, record: Recorded, call: Call, headers) -> HttpAnswer:
        with self._lock:
            account = self._caller(record, headers)
            if account is None:
                code = "ExpiredToken" if record.error == "ExpiredTokenException" else "InvalidClientTokenId"
                return self.router.error(call, AwsError(code, "The security token included in the request is "
                                                              "invalid", 403))
            try:
                if call.operation == "GetCallerIdentity":
                    return self.router.answer(call, {"Arn": f"arn:aws:iam::{account}:user/sesguard",
                                                     "UserId": "AIDAFAKE", "Account": account})
                if call.operation == "AssumeRole":
                    return self.router.answer(call, self._assume_role(record, call.params))
                raise AwsError("InvalidAction", f"{call.operation} is not served here")
            except AwsError as error:
                return self._refuse(record, call, error)

    def _assume_role(self, record: Recorded, params: dict) -> dict:
        role_arn = params.get("RoleArn", "")
        role = self.roles.get(role_arn)
        if role is None:
            raise AwsError("AccessDenied", f"User: arn:aws:iam::{record.account}:user/sesguard is not authorized to "
                                           f"perform: sts:AssumeRole on resource: {role_arn}", 403)
        invalid = _invalid_session(params, role)
        if invalid:
            raise AwsError("ValidationError", invalid)
        seconds = float(params.get("DurationSeconds", DEFAULT_SESSION))
        if self.session_seconds is not None:
            seconds = min(seconds, self.session_seconds)
        access_key = "ASIA" + uuid.uuid4().hex[:16].upper()
        key = SessionKey(role.account, secrets.token_hex(20), secrets.token_hex(32), time.time() + seconds)
        self.keys[access_key] = key
        role_name, session_name = role_arn.rsplit("/", 1)[-1], params.get("RoleSessionName", "")
        return {
            "AssumedRoleUser": {"Arn": f"arn:aws:sts::{key.account}:assumed-role/{role_name}/{session_name}",
                                "AssumedRoleId": f"AROAFAKE:{session_name}"},
            "Credentials": {"AccessKeyId": access_key, "SecretAccessKey": key.secret, "SessionToken": key.token,
                            "Expiration": key.expires_at},
        }


def _event_source(params: dict) -> str | None:
    attributes = params.get("LookupAttributes") or [{}]
    return attributes[0].get("AttributeValue") if attributes[0].get("AttributeKey") == "EventSource" else None


def _signed_in_time(amz_date: str, scope_date: str) -> bool:
    """X-Amz-Date names the credential scope's day and lies within 15 minutes of now."""
    try:
        signed = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return amz_date[:8] == scope_date and abs(datetime.now(UTC) - signed) <= SIGNATURE_PATIENCE


def _signature(key: SessionKey, match, request: HttpRequest) -> str:
    """The signature AWS expects: botocore's SigV4 over the request's own method, path and query string and
    the headers it says it signed."""
    headers = request.headers
    names = match["signed"].split(";")
    signed = AWSRequest(method=request.method, url=f"http://{headers.get('Host', '')}{request.target}",
                        data=request.body, headers={name: headers.get(name, "") for name in names})
    signed.context["timestamp"] = headers.get("X-Amz-Date", "")
    signer = SigV4Auth(Credentials(match["key"], key.secret, key.token), match["service"], match["region"])
    return signer.signature(signer.string_to_sign(signed, signer.canonical_request(signed)), signed)


def _invalid_session(params: dict, role: Role) -> str | None:
    """AssumeRole's parameter rules: DurationSeconds 900 to the role's maximum; RoleSessionName 2 to 64
    characters of [\\w+=,.@-]."""
    try:
        seconds = int(params.get("DurationSeconds", DEFAULT_SESSION))
    except (TypeError, ValueError):
        return "DurationSeconds must be a number"
    if seconds < MIN_SESSION:
        return (f"1 validation error detected: Value '{seconds}' at 'durationSeconds' failed to satisfy "
                f"constraint: Member must have value greater than or equal to {MIN_SESSION}")
    if seconds > role.max_session_seconds:
        return "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    if not _ROLE_SESSION_NAME.fullmatch(str(params.get("RoleSessionName", ""))):
        return "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint"
    return None


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def read_only(event_name: str) -> bool:
    """CloudTrail's readOnly: the call only reads (SES's Get… and List…, servicequotas' List…); sends,
    updates, creations and deletions are not."""
    return event_name.startswith(("Get", "List", "Describe"))


def _identity(record: dict) -> dict:
    return record.get("userIdentity") if isinstance(record.get("userIdentity"), dict) else {}


def _username(record: dict) -> str:
    """LookupEvents' Username, as AWS fills it: an IAM user's name, a role session's or federated user's
    name (the last part of the ARN), `root` for the root user."""
    identity = _identity(record)
    if identity.get("type") == "IAMUser":
        return identity.get("userName", "")
    if identity.get("type") == "Root":
        return "root"
    arn = identity.get("arn", "")
    if ":assumed-role/" in arn:
        return arn.split("/", 2)[-1]
    return arn.rsplit("/", 1)[-1] if ":federated-user/" in arn else ""


def _read_only(record: dict) -> bool:
    """The record's own readOnly when it has one (CloudTrail writes it), else what its call's name says."""
    value = record.get("readOnly")
    return value if isinstance(value, bool) else read_only(record["eventName"])


# The LookupAttributes served, each with the value of a record it compares to.
_ATTRIBUTES = {
    "EventSource": lambda r: r.get("eventSource"),
    "AccessKeyId": lambda r: _identity(r).get("accessKeyId"),
    "Username": _username,
}


def _lookup_entry(record: dict) -> dict:
    return {
        "EventId": record["eventID"], "EventName": record["eventName"],
        "ReadOnly": "true" if _read_only(record) else "false",
        "AccessKeyId": _identity(record).get("accessKeyId", ""),
        "EventTime": _epoch(record["eventTime"]), "EventSource": record["eventSource"],
        "Username": _username(record), "Resources": [],
        "CloudTrailEvent": json.dumps(record),
    }
