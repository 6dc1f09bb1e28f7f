"""CloudTrail LookupEvents, per account and region: the worker's default source (SPEC §3).

Accounts: the credentials' own (STS GetCallerIdentity) and one per role in SESGUARD_ROLE_ARNS (STS
AssumeRole; the role's credentials are renewed before they expire, and at once when CloudTrail calls
them expired); with SESGUARD_ORG_ROLE_NAME, also every ACTIVE account of the organisation, listed again
at every pass (`detection.sources.organizations`), each through that role; SESGUARD_ACCOUNTS_EXCLUDE
leaves some out. An account's credentials are kept from pass to pass while it is listed; every account's
calls go through one CloudTrail client per region, built once from one botocore loader and signed per call
as the account it is for (`detection.sources.accounts`): memory does not grow with the organisation.
Per account and region: one LookupAttribute per call — EventSource=ses.amazonaws.com and
servicequotas.amazonaws.com, read side by side —, pages of 50 following NextToken.

The API allows 2 requests per second per account and region, for the whole deployment rather than
per process. Every request (retries included) therefore takes a send time from the `request_slots` row
of its account and region before it goes out: a booking under the row's lock gives the process a span
of the place's time, and the requests inside it are paced in memory (`detection.pacing`); processes that
share the database share the budget. botocore's own retries are switched off, as they would send requests unbooked.
Investigations (`detection.sources.activity`) read through the same account clients, so their requests
are booked in the same rows.
No endpoint is named here: boto3 honours AWS_ENDPOINT_URL_CLOUDTRAIL and AWS_ENDPOINT_URL_STS.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain
from typing import Any

import botocore.session
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import Counter

from detection.pacing import RequestPacer
from detection.sources.accounts import (
    AccountClient,
    AccountClients,
    acting_account,
)
from detection.sources.files import FileScan, scan_bytes
from detection.sources.organizations import list_active_accounts, member_role_arn
from detection.sources.pulled import (
    AccountRegion,
    BetweenRequests,
    Pulled,
    SourceError,
    describe_aws_error,
)
from detection.store import Store

log = logging.getLogger(__name__)

EVENT_SOURCES = ("ses.amazonaws.com", "servicequotas.amazonaws.com")
PAGE_SIZE = 50  # the API's maximum
HISTORY = timedelta(days=90)  # LookupEvents reaches no further back
# LookupEvents' hard limit, per account and region, for the whole deployment.
REQUESTS_PER_WINDOW = 2
WINDOW_SECONDS = 1.0
# Requests are booked this much further apart than the limit needs: a request reaches AWS later than
# its booked time by a thread's wake-up delay and the network's jitter, and not always by the same amount.
SAFETY_MARGIN_SECONDS = 0.2

THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}

# Every LookupEvents request this process sent (the poll's and investigations', retries included) and those
# CloudTrail answered with throttling: counted at the HTTP layer of each client, so none escapes. In-process
# counters, as the store keeps no record of requests; `bot.health.metrics` exposes them (SPEC §11). No label:
# an account or region could come from a record.
LOOKUP_REQUESTS = Counter("sesguard_lookup_events_requests", "LookupEvents requests sent by this process")
LOOKUP_THROTTLED = Counter("sesguard_lookup_events_throttled",
                           "LookupEvents requests this process sent that CloudTrail answered with throttling")
EXPIRED = {"ExpiredTokenException", "ExpiredToken", "RequestExpired"}
_ROLE_ACCOUNT = re.compile(r"arn:[\w-]+:iam::(\d{12}):role/.+")

# One attempt per call: every retry goes through the pacer below, never around it.
# Parameters are built here, never from input: botocore's validation of each call is skipped (a tenth of
# a request's CPU).
# A region's client serves every account: at the highest SESGUARD_POLL_CONCURRENCY (256 pairs, each reading its
# two event sources side by side) it carries 512 requests at once. With botocore's default pool of 10, the
# connections beyond it were opened and dropped for every request. Connections are opened as needed only.
MOST_PLACES_AT_ONCE = 256  # SESGUARD_POLL_CONCURRENCY's highest value
MAX_CONNECTIONS = len(EVENT_SOURCES) * MOST_PLACES_AT_ONCE
_CLOUDTRAIL_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, parameter_validation=False,
                            connect_timeout=10, read_timeout=60, user_agent_extra="sesguard",
                            max_pool_connections=MAX_CONNECTIONS)


class MalformedAnswer(ValueError):
    """A 200 answer that is not a LookupEvents page (botocore reads unparsable JSON as an empty page)."""


def lookup_pacer(store: Store, limit: int = REQUESTS_PER_WINDOW,
                 sleep: Callable[[float], None] = time.sleep) -> RequestPacer:
    """LookupEvents' pace: `limit` requests a second per account and region, booked with a margin."""
    return RequestPacer(store, limit, WINDOW_SECONDS, SAFETY_MARGIN_SECONDS, sleep=sleep)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter, for throttling and transient failures."""

    base: float = 0.5
    cap: float = 20.0
    throttled_retries: int = 8
    failed_retries: int = 3  # 5xx, unreadable answers, connection errors
    expired_retries: int = 2  # credentials renewed after an "expired" answer

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


# ── accounts ─────────────────────────────────────────────────────────────────────────────────────────


class AccountAccess:
    """One account's LookupEvents: with the base credentials (its own account), or through a role assumed
    by botocore and renewed before it expires (`detection.sources.accounts`). Its calls go through the
    source's shared CloudTrail client of the region, signed as this account and paced as its own."""

    def __init__(self, clients: AccountClients, account_id: str, role_arn: str | None = None):
        self.clients, self.account_id, self.role_arn = clients, account_id, role_arn
        clients.add(account_id, role_arn)

    def lookup_events(self, region: str, **params: Any) -> dict:
        """One LookupEvents request; SourceError when the account's role cannot be assumed."""
        with self.clients.acting_as(self.account_id):
            return self.clients.client("cloudtrail", region, _CLOUDTRAIL_CONFIG).lookup_events(**params)

    def client(self, service: str, region: str, config: Config | None = None) -> AccountClient:
        """A client for another service in this account (an investigation's, the triage context's)."""
        return self.clients.account_client(self.account_id, service, region, config)

    def renew(self, sent_at: float | None = None) -> None:
        """After an "expired" answer to a request sent at `sent_at`: new credentials for the next request."""
        self.clients.renew(self.account_id, sent_at)


def _count_request(event_name: str = "", **_: Any) -> None:
    if event_name.endswith(".LookupEvents"):
        LOOKUP_REQUESTS.inc()  # returns None: a before-send handler's value would replace the HTTP response


def _count_answer(parsed: Any = None, **_: Any) -> None:
    """after-call fires for every answer, errors included, before botocore raises them."""
    error = parsed.get("Error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("Code") in THROTTLED:
        LOOKUP_THROTTLED.inc()


def role_account(role_arn: str) -> str:
    match = _ROLE_ACCOUNT.fullmatch(role_arn)
    if not match:
        raise SourceError(f"not an IAM role ARN with an account: {role_arn[:100]}")
    return match[1]


# ── the source ───────────────────────────────────────────────────────────────────────────────────────


class LookupSource:
    """Reads matching events per account and region with LookupEvents; one instance lives as long as
    the worker (it keeps assumed-role credentials and clients between passes)."""

    name = "lookup"
    history: timedelta | None = HISTORY

    def __init__(self, regions: list[str], role_arns: list[str], store: Store, identity_mode: str = "principal",
                 backoff: Backoff = Backoff(), pacer: RequestPacer | None = None,
                 sleep: Callable[[float], None] = time.sleep, org_role_name: str | None = None,
                 exclude: Iterable[str] = (), session: botocore.session.Session | None = None):
        self.regions, self.role_arns, self.identity_mode = list(regions), list(role_arns), identity_mode
        self.org_role_name, self.exclude = org_role_name, set(exclude)
        self.backoff, self.sleep = backoff, sleep
        self.pacer = pacer or lookup_pacer(store, sleep=sleep)
        self.clients = AccountClients(session=session)  # `session`: a botocore session to start from (tests)
        self.base = self.clients.boto3_session()  # the own credentials, on the clients' one loader
        self.sts_region = self.base.region_name or regions[0]
        self.clients.sts_region = self.sts_region
        # before-send fires for every HTTP request a client makes: none escapes the pacer.
        self.clients.on_new_client("cloudtrail", self._pace)
        self.partition = "aws"  # from GetCallerIdentity's ARN
        self._fixed: dict[str, AccountAccess] | None = None  # the own account and SESGUARD_ROLE_ARNS: built once
        self._accounts: dict[str, AccountAccess] = {}  # those and the organisation's, as last listed
        self._accounts_lock = threading.Lock()
        # The threads that read a place's other event sources beside the caller's: made as reads need them
        # (one per place read at once) and kept for the next pass.
        self._side = ThreadPoolExecutor(max_workers=MOST_PLACES_AT_ONCE, thread_name_prefix="lookup-source")
        # Why the latest listing of the organisation failed (None: it did not); the accounts listed before
        # are read meanwhile, and the poll reports this as a failure of the source as a whole.
        self.listing_error: str | None = None

    def places(self) -> list[AccountRegion]:
        """Every account and region to read, the organisation listed afresh; SourceError when the
        credentials' own account is unknown."""
        return [AccountRegion(account, region) for account in self._list_accounts() for region in self.regions]

    def accounts(self) -> list[str]:
        """The credentials' own account, each role's, then the organisation's as last listed (SourceError
        when the own one is unknown)."""
        return list(self._account_access())

    def access(self, account_id: str) -> AccountAccess:
        """The clients of one account this source reads (an investigation reads through them too, and so
        shares their credentials and their pace); SourceError for an account it does not read."""
        accounts = self._account_access()
        if account_id not in accounts:
            raise SourceError(f"account {account_id[:20]} is neither the credentials' own nor one of "
                              "SESGUARD_ROLE_ARNS" + (" nor an ACTIVE account of the organisation"
                                                      if self.org_role_name else ""))
        return accounts[account_id]

    def _account_access(self) -> dict[str, AccountAccess]:
        with self._accounts_lock:  # the poll and an investigation may ask for the first time at once
            if not self._accounts:
                self._refresh()
            return self._accounts

    def _list_accounts(self) -> list[str]:
        with self._accounts_lock:
            self._refresh()
            return list(self._accounts)

    def _refresh(self) -> None:
        """Under the lock: the fixed accounts once, the organisation's every time. A listing that fails
        keeps the accounts of the last one that worked (a throttled ListAccounts must not stop the reads)."""
        if self._fixed is None:
            self._fixed = self._build_fixed()
        accounts = dict(self._fixed)
        if self.org_role_name:
            try:
                listing = list_active_accounts(self.base, self.sts_region)
            except SourceError as exc:
                self.listing_error = str(exc)
                log.warning("%s; reading the %d accounts listed before", exc, len(self._accounts))
                self._accounts = {**self._accounts, **accounts}
                return
            self.listing_error = None
            for account in listing.active:
                if account in accounts or account in self.exclude:
                    continue
                known = self._accounts.get(account)  # its credentials live on between passes
                role_arn = member_role_arn(self.partition, account, self.org_role_name)
                accounts[account] = known or AccountAccess(self.clients, account, role_arn)
        for gone in set(self._accounts) - set(accounts):  # left the organisation (or excluded now)
            self.clients.forget(gone)
        self._accounts = accounts

    def _build_fixed(self) -> dict[str, AccountAccess]:
        own = self._own_account()
        roles: dict[str, str | None] = {own: None}
        for role_arn in self.role_arns:
            account = role_account(role_arn)
            if account in roles:
                log.warning("skipping %s: account %s is read already", role_arn, account)
                continue
            roles[account] = role_arn
        return {account: AccountAccess(self.clients, account, role_arn)
                for account, role_arn in roles.items() if account not in self.exclude}

    def pull(self, place: AccountRegion, start: datetime, end: datetime, between: BetweenRequests) -> Pulled:
        """Every matching call with eventTime in [start, end] (clamped to the API's 90 days).

        The place's two event sources are read side by side: the pace of 2 requests a second allows both
        first pages at once, and a steady pass then waits for one round trip per place instead of two."""
        access = self.access(place.account_id)
        start = max(start, end - HISTORY)
        others = [self._side.submit(self._read, access, place, source, start, end, between)
                  for source in EVENT_SOURCES[1:]]
        try:
            scans = [self._read(access, place, EVENT_SOURCES[0], start, end, between)]
        finally:  # the other reads end too (their between() stops them when the process stops) before this returns
            wait(others)
        scans += [future.result() for future in others]
        pulled = Pulled()
        for scan in chain.from_iterable(scans):
            pulled.add(scan)
        return pulled

    def _read(self, access: AccountAccess, place: AccountRegion, event_source: str, start: datetime, end: datetime,
              between: BetweenRequests) -> list[FileScan]:
        """One event source's pages, following NextToken."""
        scans: list[FileScan] = []
        token: str | None = None
        while True:
            between()
            attribute = {"AttributeKey": "EventSource", "AttributeValue": event_source}
            page = lookup_page(access, place, attribute, start, end, token, self.backoff, self.sleep)
            entries = [{"CloudTrailEvent": event.get("CloudTrailEvent") if isinstance(event, dict) else None}
                       for event in page["Events"]]
            # A LookupEvents page is one of the layouts the file reader knows: one parser for all.
            name = f"LookupEvents {place} {event_source} page {len(scans) + 1}"
            scans.append(scan_bytes(name, orjson.dumps({"Events": entries}), self.identity_mode))
            next_token = page.get("NextToken")
            if not next_token:
                return scans
            if next_token == token:
                raise SourceError(f"LookupEvents {place}: the same NextToken came back twice")
            token = next_token

    def client(self, service: str, account_id: str, region: str, config: Config | None = None) -> AccountClient:
        """A client for `service` in one of the accounts this source reads, in `region`, signed as that
        account (through its role, when it has one); SourceError for an account it does not read."""
        return self.access(account_id).client(service, region, config)

    def _pace(self, client: Any) -> None:
        """A new CloudTrail client's requests wait for their account and region's turn."""
        region = client.meta.region_name

        def place() -> str:  # the account this call acts as (the client is shared by every account)
            return f"cloudtrail:{acting_account()}:{region}"

        def wait_turn(**_: Any) -> None:  # a handler that returns a value would replace the HTTP response
            self.pacer.wait_turn(place())

        def answered(**_: Any) -> None:  # after every attempt, answered or not: the request reached AWS by then
            self.pacer.answered(place())

        client.meta.events.register("before-send.cloudtrail", wait_turn)
        client.meta.events.register("response-received.cloudtrail", answered)
        # after the pacer's turn (handlers of one event run in the order registered): a request counts once it
        # goes out
        client.meta.events.register("before-send.cloudtrail", _count_request)
        client.meta.events.register("after-call.cloudtrail.LookupEvents", _count_answer)

    def remember(self, pulled: Pulled) -> None:
        """Nothing to remember: the store de-duplicates by eventID."""

    def _own_account(self) -> str:
        try:
            identity = self.base.client("sts", region_name=self.sts_region).get_caller_identity()
        except (ClientError, BotoCoreError) as exc:
            raise SourceError("cannot identify the credentials' account (STS GetCallerIdentity): "
                              f"{describe_aws_error(exc)}") from exc
        account = identity.get("Account")
        if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
            raise SourceError("STS GetCallerIdentity named no account")
        partition = re.match(r"arn:(aws(?:-[a-z]+)*):", str(identity.get("Arn") or ""))
        self.partition = partition[1] if partition else "aws"
        return account


def lookup_page(access: AccountAccess, place: AccountRegion, attribute: dict, start: datetime, end: datetime,
                token: str | None, backoff: Backoff, sleep: Callable[[float], None]) -> dict:
    """One LookupEvents page for one LookupAttribute, paced through the account's clients; throttling,
    5xx, unreadable answers and expired credentials are retried with back-off. SourceError when it
    cannot be had."""
    params: dict[str, Any] = {"LookupAttributes": [attribute], "StartTime": start, "EndTime": end,
                              "MaxResults": PAGE_SIZE}
    if token:
        params["NextToken"] = token
    retries = {"throttled": 0, "failed": 0, "expired": 0}
    while True:
        sent_at = time.monotonic()
        try:
            page = access.lookup_events(place.region, **params)
            if not isinstance(page.get("Events"), list):
                raise MalformedAnswer("the answer has no Events list")
            return page
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in THROTTLED:
                kind = "throttled"
            elif code in EXPIRED:
                kind = "expired"
            elif status >= 500:
                kind = "failed"
            else:
                raise SourceError(f"LookupEvents {place}: {describe_aws_error(exc)}") from exc
            error: Exception = exc
        except (BotoCoreError, MalformedAnswer) as exc:
            kind, error = "failed", exc
        retries[kind] += 1
        if retries[kind] > getattr(backoff, f"{kind}_retries"):
            raise SourceError(f"LookupEvents {place}: {describe_aws_error(error)} ({kind}, gave up after "
                              f"{retries[kind] - 1} retries)") from error
        if kind == "expired":
            log.info("LookupEvents %s: credentials expired, renewing them", place)
            access.renew(sent_at)
        else:
            log.warning("LookupEvents %s: %s; retrying", place, describe_aws_error(error))
            sleep(backoff.delay(retries[kind]))
