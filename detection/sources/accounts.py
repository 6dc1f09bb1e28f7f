"""AWS clients for every account sesguard reads, from one botocore session (SPEC §7).

A boto3 Session per account loads every service model and endpoint rule again (about 10 MB and 20 ms a
session), and a client per account and region kept for ever grows with the organisation; building a
client costs about 4 ms of CPU, too much to build one per account and region at every pass. So:

- One botocore loader per process: every client is built from the service models and endpoint rules it
  loaded once.
- Clients are per service and region and shared by every account: which account's credentials sign a
  call is chosen per call (`acting_as(account)`, a context variable, so per thread). A pass over 500
  accounts × 17 regions builds 17 CloudTrail clients, not 8,500. They live in a small LRU.
- An assumed role's credentials are botocore's own refreshing kind (`AssumeRoleCredentialFetcher` behind
  `DeferredRefreshableCredentials`): assumed at first use, renewed by botocore itself before they expire
  (15 minutes before, or at once when fewer are left), one renewal at a time per account whatever the
  number of threads. An "expired" answer renews them at once (`renew`).

`account_client(account, service, region)` is the client for anyone who calls AWS in an account sesguard
reads (an investigation, the triage context): its calls, and its paginators' pages, are signed as that
account.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    CredentialResolver,
    Credentials,
    DeferredRefreshableCredentials,
)
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from detection.sources.pulled import SourceError, describe_aws_error

ROLE_SESSION_NAME = "sesguard"
ROLE_SESSION_SECONDS = 3600
# Clients kept: one per service and region in use is what a pass needs (17 CloudTrail regions, a few IAM
# or STS clients for investigations); beyond that the least recently used is let go.
MAX_CLIENTS = 64
_STS_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=30,
                     user_agent_extra="sesguard")

# (account, its credentials) whose calls the current thread is making; None outside `acting_as`.
_acting: ContextVar[tuple[str, Credentials] | None] = ContextVar("sesguard_aws_account", default=None)


def acting_account() -> str | None:
    """The account whose credentials sign this thread's calls now (None outside `acting_as`)."""
    bound = _acting.get()
    return bound[0] if bound is not None else None


class _ActingCredentials(Credentials):
    """The shared clients' credentials: those of the account the calling thread acts as. A call made outside
    `acting_as` is refused (NoCredentialsError) rather than signed as some other account."""

    method = "sesguard-account"

    def __init__(self) -> None:  # no keys of its own: Credentials.__init__ would set them
        pass

    @staticmethod
    def _bound() -> Credentials:
        bound = _acting.get()
        if bound is None:
            raise NoCredentialsError()
        return bound[1]

    def get_frozen_credentials(self):
        return self._bound().get_frozen_credentials()

    @property
    def access_key(self):
        return self._bound().access_key

    @property
    def secret_key(self):
        return self._bound().secret_key

    @property
    def token(self):
        return self._bound().token

    @property
    def account_id(self):
        return getattr(self._bound(), "account_id", None)


class _Given(CredentialProvider):
    METHOD = "sesguard-account"

    def __init__(self, credentials: Credentials):
        super().__init__()
        self.credentials = credentials

    def load(self) -> Credentials:
        return self.credentials


def _session(loader: Any = None, credentials: Credentials | None = None) -> botocore.session.Session:
    session = botocore.session.Session()
    if loader is not None:
        session.register_component("data_loader", loader)
    if credentials is not None:
        session.register_component("credential_provider", CredentialResolver([_Given(credentials)]))
    return session


class AccountClients:
    """The accounts a process reads and the clients it calls them with (one per service and region)."""

    def __init__(self, sts_region: str | None = None, max_clients: int = MAX_CLIENTS,
                 session: botocore.session.Session | None = None):
        # The process's own credential chain (environment, profile, instance role, …): its own account,
        # and the source of every AssumeRole. Its loader (`session`'s, when one is given) serves every client.
        self.own = session or _session()
        self._loader = self.own.get_component("data_loader")
        self._shared = _session(self._loader, _ActingCredentials())
        self.sts_region = sts_region or self.own.get_config_variable("region") or "us-east-1"
        self.max_clients = max_clients
        self._credentials: dict[str, Credentials] = {}
        self._renewed_at: dict[str, float] = {}  # account → when its credentials were last dropped as expired
        self._roles: dict[str, str | None] = {}  # account → its role (None: the own credentials)
        self._clients: OrderedDict[tuple[str, str, int], Any] = OrderedDict()
        self._prepare: dict[str, Callable[[Any], None]] = {}
        self._lock = threading.Lock()
        self.built = 0  # clients built so far (the memory test and the benchmark read it)

    def boto3_session(self) -> boto3.Session:
        """A boto3 Session with the own credentials on the shared loader (Organizations, STS)."""
        return boto3.Session(botocore_session=self.own)

    # ── accounts ─────────────────────────────────────────────────────────────────────────────────

    def add(self, account: str, role_arn: str | None = None) -> None:
        """An account to call: with the own credentials (no role) or through `role_arn`. Nothing is
        assumed yet: the first call does it."""
        with self._lock:
            if account in self._roles and self._roles[account] == role_arn:
                return
            self._roles[account] = role_arn
            self._credentials.pop(account, None)

    def forget(self, account: str) -> None:
        """An account no longer read (left the organisation): its credentials go."""
        with self._lock:
            self._roles.pop(account, None)
            self._credentials.pop(account, None)
            self._renewed_at.pop(account, None)

    def role_of(self, account: str) -> str | None:
        return self._roles.get(account)

    def renew(self, account: str, sent_at: float | None = None) -> None:
        """After an "expired" answer to a call sent at `sent_at` (time.monotonic()): new credentials for the
        account's next call, unless another thread renewed them since that call went out (two reads of one
        account, side by side, both answered "expired": one renewal)."""
        with self._lock:
            if sent_at is not None and self._renewed_at.get(account, float("-inf")) >= sent_at:
                return
            self._renewed_at[account] = time.monotonic()
            self._credentials.pop(account, None)
            if self._roles.get(account) is None:  # the chain resolves again (a refreshed profile, …)
                self.own = _session(self._loader)

    def credentials(self, account: str) -> Credentials:
        """The account's credentials, ready to sign (a role assumed now if it never was, or renewed if it
        is due); SourceError when they cannot be had."""
        if account not in self._roles:
            raise SourceError(f"account {account[:20]} is not one sesguard reads")
        with self._lock:
            credentials = self._credentials.get(account)
            if credentials is None:
                credentials = self._build(account)
                self._credentials[account] = credentials
        role = self._roles.get(account)
        try:
            credentials.get_frozen_credentials()  # assumes, or renews when due, under its own lock
        except (ClientError, BotoCoreError) as exc:
            with self._lock:  # the next call tries afresh rather than with a fetcher that failed
                if self._credentials.get(account) is credentials:
                    del self._credentials[account]
            what = f"assume {role}" if role else "read the credentials"
            raise SourceError(f"cannot {what}: {describe_aws_error(exc)}") from exc
        return credentials

    def _build(self, account: str) -> Credentials:
        own = self.own.get_credentials()
        if own is None:
            raise SourceError("no AWS credentials found (environment, profile or instance role)")
        role = self._roles[account]
        if role is None:
            return own
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=partial(self.own.create_client, region_name=self.sts_region, config=_STS_CONFIG),
            source_credentials=own, role_arn=role,
            extra_args={"RoleSessionName": ROLE_SESSION_NAME, "DurationSeconds": ROLE_SESSION_SECONDS})
        return DeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")

    @contextmanager
    def acting_as(self, account: str) -> Iterator[None]:
        """The calls this thread makes inside are signed with `account`'s credentials."""
        token = _acting.set((account, self.credentials(account)))
        try:
            yield
        finally:
            _acting.reset(token)

    # ── clients ──────────────────────────────────────────────────────────────────────────────────

    def on_new_client(self, service: str, prepare: Callable[[Any], None]) -> None:
        """`prepare(client)` runs once on every client of `service` built from now on (event handlers)."""
        self._prepare[service] = prepare

    def client(self, service: str, region: str, config: Config | None = None) -> Any:
        """The shared client of a service and region; call it inside `acting_as`."""
        key = (service, region, id(config))
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        client = self._shared.create_client(service, region_name=region, config=config)
        if service in self._prepare:
            self._prepare[service](client)
        with self._lock:
            kept = self._clients.setdefault(key, client)  # another thread may have built one meanwhile
            self._clients.move_to_end(key)
            self.built += kept is client
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        return kept

    def clients_kept(self) -> int:
        return len(self._clients)

    def account_client(self, account: str, service: str, region: str, config: Config | None = None) -> AccountClient:
        """A client for `service` in `account` and `region`: every call signed as that account."""
        self.credentials(account)  # a role that cannot be assumed fails here, by its name
        return AccountClient(self, account, self.client(service, region, config))


class AccountClient:
    """A shared client bound to one account: each API call (and each page of a paginator) is made acting as
    it. Anything else (`meta`, `exceptions`, `can_paginate`) is the client's own."""

    def __init__(self, clients: AccountClients, account: str, client: Any):
        self._clients, self.account, self._client = clients, account, client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or name in ("meta", "exceptions", "can_paginate", "get_waiter") \
                or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._clients.acting_as(self.account):
                return attribute(*args, **kwargs)
        return call

    def get_paginator(self, operation: str) -> _AccountPaginator:
        return _AccountPaginator(self, self._client.get_paginator(operation))


class _AccountPaginator:
    def __init__(self, owner: AccountClient, paginator: Any):
        self._owner, self._paginator = owner, paginator

    def paginate(self, **kwargs: Any) -> Iterator[Any]:
        pages = iter(self._paginator.paginate(**kwargs))
        done = object()
        while True:
            with self._owner._clients.acting_as(self._owner.account):  # each page's request, not the caller's code
                page = next(pages, done)
            if page is done:
                return
            yield page


def account_client(clients: AccountClients, account: str, service: str, region: str,
                   config: Config | None = None) -> AccountClient:
    """A client for `service` in `account` and `region`, signed as that account (its role assumed through
    STS when it has one); SourceError when the account is not read or its role cannot be assumed."""
    return clients.account_client(account, service, region, config)
