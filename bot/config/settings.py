"""Configuration from the environment and a `.env` file (SPEC §5); the environment wins.

A missing or invalid setting stops start-up with one line naming it (`SettingsError`), never a
pydantic traceback. Secrets are `SecretStr`, so that they never print in logs or error messages.

Two models, one set of rules: `DetectionSettings` holds what detection reads (identity key, durations, the SQL
engines) and `Settings` extends it with everything else. `sesguard scan` loads `DetectionSettings` alone, so a
scan on a laptop neither needs nor checks a Slack setting (a bad SLACK_ALERT_CHANNEL in `.env` stops the worker,
not a scan); every other process loads `Settings`. Each field and its validator is written once, in one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.config.business_hours import parse as parse_business_hours
from bot.config.errors import SettingsError
from bot.config.logs import LOG_FORMATS
from bot.config.networks import parse_network
from detection import DEFAULT_DATABASE_URL
from detection.baseline import LONGEST, Tuning
from detection.investigate import MAX_HOURS
from detection.record import IDENTITY_KEYS
from detection.signals import EXERCISE_USER_AGENTS, HIGH, LOW, MEDIUM
from detection.sources.sql.engine import is_engine_url
from detection.sources.sql.engine import parse as parse_engine_url
from detection.sources.sql.running import DEFAULT_MAX_GB
from detection.sources.sql.values import UnsafeValue, athena_table, event_data_store
from detection.sources.sqs import is_trail_bucket

AUTO_INVESTIGATE_OFF = "off"
AUTO_INVESTIGATE_CHOICES = (HIGH, MEDIUM, LOW, AUTO_INVESTIGATE_OFF)


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _each_entry(value: list[str], valid: Callable[[str], object], what: str) -> list[str]:
    """`value` when every entry is `valid`; otherwise the first bad one named by its position (never echoed:
    a secret pasted into the wrong setting stays out of the error)."""
    for number, entry in enumerate(value, 1):
        if not valid(entry):
            raise ValueError(f"entry {number} is not {what}")
    return value


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# The IAM tag keys that name an identity's owner unless SESGUARD_OWNER_TAGS says otherwise (SPEC §10).
OWNER_TAGS = ("owner", "email", "contact")

# Slack's IDs: users U… (W… on Enterprise Grid), user groups S…; upper-case letters and digits.
_Value = TypeVar("_Value", str, SecretStr)
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
_USERGROUP_ID = re.compile(r"S[A-Z0-9]{2,}")

# Lists are written comma-separated in the environment, not as JSON: parsed by `_csv`, never decoded.
CommaSeparated = Annotated[list[str], NoDecode]

# Every duration setting and its unit (durations accept decimals, so that tests and drills can shorten them).
DURATIONS = {
    "learning_days": timedelta(days=1), "forget_days": timedelta(days=1), "group_minutes": timedelta(minutes=1),
    "poll_seconds": timedelta(seconds=1), "lookback_minutes": timedelta(minutes=1),
    "backfill_days": timedelta(days=1), "contact_timeout_minutes": timedelta(minutes=1),
    "event_retention_days": timedelta(days=1), "lease_seconds": timedelta(seconds=1),
    "investigate_hours": timedelta(hours=1), "retry_seconds": timedelta(seconds=1),
}
# Detection's settings that a blank value (`NAME=` in a .env) leaves at their default.
BLANK_IS_UNSET = ("identity_key", "learning_days", "forget_days", "group_minutes", "athena_workgroup",
                  "athena_output", "sql_max_gb")


class DetectionSettings(BaseSettings):
    """What detection reads: the whole of `sesguard scan`'s settings, and the start of every other process's."""

    # The string under each field is its description: the configuration reference (docs/) is made from it.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True, use_attribute_docstrings=True)

    identity_key: str = Field("principal", alias="SESGUARD_IDENTITY_KEY")
    """`principal` or `arn` (see the identity keys under Detection)"""
    learning_days: float = Field(7, alias="SESGUARD_LEARNING_DAYS", ge=0)
    """silent learning after the start of observation of an account"""
    forget_days: float = Field(28, alias="SESGUARD_FORGET_DAYS", gt=0)
    """an identity unseen for longer is new again"""
    group_minutes: float = Field(60, alias="SESGUARD_GROUP_MINUTES", ge=0)
    """calls within this of a signal's first call join it"""
    exercise_user_agents: CommaSeparated = Field(default_factory=lambda: list(EXERCISE_USER_AGENTS),
                                                 alias="SESGUARD_EXERCISE_USER_AGENTS")
    """comma-separated user-agent prefixes of attack-simulation tools; their calls add the reason "red-team exercise
    tool" (empty: none)
    """

    # SPEC §9: history on a SQL engine (`scan athena://… lake://…`, the backfill, investigations).
    athena_table: str | None = Field(None, alias="SESGUARD_ATHENA_TABLE")
    """`database.table` of the standard CloudTrail table (what a bare `athena://` names)"""
    athena_workgroup: str = Field("primary", alias="SESGUARD_ATHENA_WORKGROUP")
    """the Athena workgroup queries run in"""
    athena_output: str | None = Field(None, alias="SESGUARD_ATHENA_OUTPUT")
    """`s3://bucket/prefix/` for Athena's result files, unless the workgroup enforces its own"""
    lake_event_data_store: str | None = Field(None, alias="SESGUARD_LAKE_EVENT_DATA_STORE")
    """a CloudTrail Lake event data store, by ID or ARN (what a bare `lake://` names)"""
    sql_max_gb: float = Field(DEFAULT_MAX_GB, alias="SESGUARD_SQL_MAX_GB", gt=0, le=1_000_000)
    """a query that the engine says has scanned more than this is stopped and fails"""

    # Not named `_csv_fields`: that is `Settings`' own, and a subclass's attribute would replace this one.
    _csv_prefixes = field_validator("exercise_user_agents", mode="before")(_csv)

    @field_validator(*BLANK_IS_UNSET, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        # `NAME=` in a .env is not set, as for SLACK_ALERT_CHANNEL: the default holds.
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[str(info.field_name)].get_default(call_default_factory=True)
        return value

    @field_validator("identity_key")
    @classmethod
    def _known_identity_key(cls, value: str) -> str:
        value = value.strip()
        if value not in IDENTITY_KEYS:
            raise ValueError(f"must be one of {', '.join(IDENTITY_KEYS)}")
        return value

    # Every duration of both models; `check_fields=False` since most of them are fields of `Settings`.
    @field_validator(*DURATIONS, check_fields=False)
    @classmethod
    def _duration(cls, value: float, info: ValidationInfo) -> float:
        unit = DURATIONS[str(info.field_name)]  # a field validator's: always named
        if value > LONGEST / unit:  # longer, or infinite, would overflow date arithmetic (nan fails ge/gt)
            raise ValueError(f"must be at most {LONGEST / unit:g}")
        return value

    @field_validator("athena_workgroup")
    @classmethod
    def _athena_workgroup(cls, value: str) -> str:
        # It goes into the StartQueryExecution request: Athena's own pattern for a workgroup name.
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", value.strip()):
            raise ValueError("must be a workgroup name (letters, digits and ._-, at most 128)")
        return value.strip()

    @field_validator("athena_output")
    @classmethod
    def _athena_output(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"s3://[^/\s]+(/\S*)?", value.strip()):
            raise ValueError("must be s3://bucket/prefix/")
        return value.strip() if value is not None else None

    @field_validator("athena_table")
    @classmethod
    def _athena_table(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            athena_table(value)
        except UnsafeValue:
            raise ValueError("must be database.table (lower-case letters, digits, _)") from None
        return value.strip()

    @field_validator("lake_event_data_store")
    @classmethod
    def _lake_store(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            return event_data_store(value)
        except UnsafeValue:
            raise ValueError("must be an event data store ID or ARN (letters, digits, -)") from None

    def override(self, field: str, value: object) -> None:
        """Set one setting (a command-line flag over it), checked by its own rules: ValidationError if not."""
        type(self).__pydantic_validator__.validate_assignment(self, field, value)

    @property
    def engine_settings(self):
        """detection.sources.sql.engine.EngineSettings from these settings."""
        from detection.sources.sql.engine import EngineSettings
        from detection.sources.sql.running import Limits

        return EngineSettings(self.athena_workgroup, self.athena_output, Limits(max_gb=self.sql_max_gb))

    @property
    def tuning(self) -> Tuning:
        return Tuning(
            learning=timedelta(days=self.learning_days),
            forget=timedelta(days=self.forget_days),
            group=timedelta(minutes=self.group_minutes),
            exercise_user_agents=tuple(self.exercise_user_agents),
        )


class Settings(DetectionSettings):
    """Every setting of SPEC §5: detection's, then Slack's, the store's, the worker's and the responses'."""


    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    """bot token (`xoxb-…`); needed by `serve`, `socket`, `worker`, `poll`"""
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    """verifies every request from Slack (`serve`)"""
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    """app-level token (`xapp-…`) for Socket Mode (`socket`)"""
    slack_alert_channel: str | None = Field(None, alias="SLACK_ALERT_CHANNEL")
    """channel **ID** (`C…`) where alerts are posted"""
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    """Web API base, for Slack-compatible endpoints and tests"""
    slack_triagers: CommaSeparated = Field(default_factory=list, alias="SLACK_TRIAGERS")
    """comma-separated user IDs (`U…`, `W…` on Enterprise Grid) allowed to act on alerts; a name, `@handle` or e-mail
    stops start-up with one line naming the setting
    """
    slack_triage_usergroup: str | None = Field(None, alias="SLACK_TRIAGE_USERGROUP")
    """a user group ID (`S…`, not its handle) whose members may act on alerts; with neither set, start-up warns that
    everyone may
    """

    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    """the store; PostgreSQL as `postgresql+psycopg://user:pass@host/db`"""

    aws_regions: CommaSeparated = Field(default_factory=lambda: ["us-east-1"],
                                   validation_alias=AliasChoices("AWS_REGIONS"))
    """comma-separated regions to poll"""
    source: str = Field("lookup", alias="SESGUARD_SOURCE")
    """`lookup` (CloudTrail LookupEvents), `s3://bucket/prefix` (CloudTrail log files) or `sqs` (a queue of S3
    notifications or EventBridge events, see Organisation scale)
    """
    role_arns: CommaSeparated = Field(default_factory=list, alias="SESGUARD_ROLE_ARNS")
    """comma-separated roles to assume, one per extra account"""
    poll_seconds: float = Field(300, alias="SESGUARD_POLL_SECONDS", gt=0)
    """how often the worker polls"""
    lookback_minutes: float = Field(20, alias="SESGUARD_LOOKBACK_MINUTES", ge=0)
    """each poll re-reads this far behind the watermark (CloudTrail delivers late)"""
    backfill_source: str | None = Field(None, alias="SESGUARD_BACKFILL_SOURCE")
    """where the first start's history comes from: `athena://database.table` or `lake://<store>` (one query for every
    account and region, see SQL engines); `lookup` and `s3://…` are accepted too. With `SESGUARD_SOURCE=sqs` it is
    the queue's baseline: `lookup` (through the same accounts and roles as polling) or `s3://bucket/prefix` (an
    engine backfills only the polled sources: with the queue, start-up refuses it in one line); without it, an
    account's observation starts at its first event
    """
    backfill_days: float = Field(90, alias="SESGUARD_BACKFILL_DAYS", ge=0)
    """history read as baseline on the first poll (90 is LookupEvents' maximum; with an `athena://` or `lake://`
    backfill source, any depth)
    """
    contact_timeout_minutes: float = Field(120, alias="SESGUARD_CONTACT_TIMEOUT_MINUTES", gt=0)
    """an unanswered "was this you?" escalates after this"""
    event_retention_days: float = Field(400, alias="SESGUARD_EVENT_RETENTION_DAYS", gt=0)
    """matching calls kept for `/sesguard history` and de-duplication"""
    lease_seconds: float = Field(60, alias="SESGUARD_LEASE_SECONDS", gt=0)
    """a worker (or an outbox claim) not renewed for this long is taken over"""
    port: int = Field(3000, alias="PORT", ge=1, le=65535)
    """`serve`'s port (`serve --port` wins; `--port 0` binds any free port and names it in the `listening on
    http://0.0.0.0:N` log line)
    """
    retry_seconds: float = Field(0.5, alias="SESGUARD_RETRY_SECONDS", ge=0)
    """the first pause before a request is retried: LookupEvents after throttling, a 5xx or an unreadable answer
    (doubling, with jitter, up to 20 s); a Slack call after a 5xx or a dropped connection (doubling, plus up to as
    much again); a post after one (then twice that); and the most added to Slack's `Retry-After` (honoured, at most
    120 s). Decimals; 0 retries at once
    """

    # ── SPEC §6: paging and containment ──────────────────────────────────────────────────────────
    pagerduty_routing_key: SecretStr | None = Field(None, alias="PAGERDUTY_ROUTING_KEY")
    """the 32-character integration key of a PagerDuty service's Events API v2 integration; with it, Escalate, a "No"
    answer, a contact time-out and follow-on abuse page, and Not an issue and Suppress resolve
    """
    pagerduty_events_url: str = Field(PAGERDUTY_EVENTS_URL, alias="PAGERDUTY_EVENTS_URL", pattern=r"^https?://\S+$")
    """the Events API v2 endpoint (PagerDuty's EU service region: `https://events.eu.pagerduty.com/v2/enqueue`)"""
    response_actions: bool = Field(False, alias="SESGUARD_RESPONSE_ACTIONS")
    """`true` puts **Deactivate access key** and **Revoke role sessions** on the alerts (they change IAM)"""

    # ── SPEC §6: investigation ───────────────────────────────────────────────────────────────────
    investigate_hours: float = Field(24, alias="SESGUARD_INVESTIGATE_HOURS", gt=0, le=MAX_HOURS)
    """an investigation reads up to this long after the alert's last call (up to now); `/sesguard investigate` and
    `sesguard investigate` read this far back by default; at most 2160 (LookupEvents' 90 days)
    """
    auto_investigate: str = Field("high", alias="SESGUARD_AUTO_INVESTIGATE")
    """alerts of this severity or above are investigated by the worker once posted: `high`, `medium`, `low`, or `off`"""
    investigate_max_pages: int = Field(50, alias="SESGUARD_INVESTIGATE_MAX_PAGES", ge=1, le=1000)
    """LookupEvents pages (50 events each) one investigation reads at most; the summary says when the cap stopped it"""

    # ── SPEC §7: organisation scale ──────────────────────────────────────────────────────────────
    poll_concurrency: int = Field(16, alias="SESGUARD_POLL_CONCURRENCY", ge=1, le=256)
    """account/region reads under way at once in a poll pass (1–256); each place still gets at most 2 LookupEvents
    requests a second (see Organisation scale)
    """
    org_role_name: str | None = Field(None, alias="SESGUARD_ORG_ROLE_NAME")
    """with it, every ACTIVE account of the AWS organisation (`organizations:ListAccounts`, listed again every pass) is
    read through `arn:<partition>:iam::<account>:role/<name>`, beside `SESGUARD_ROLE_ARNS` (an IAM role name,
    optionally after a path)
    """
    accounts_exclude: CommaSeparated = Field(default_factory=list, alias="SESGUARD_ACCOUNTS_EXCLUDE")
    """comma-separated 12-digit account IDs never read (the credentials' own, a role's or an organisation's)"""
    sqs_queue_url: str | None = Field(None, alias="SESGUARD_SQS_QUEUE_URL", pattern=r"^https?://\S+$")
    """the URL of the queue `SESGUARD_SOURCE=sqs` consumes, as `aws sqs get-queue-url` prints it; required with it"""
    trail_buckets: CommaSeparated = Field(default_factory=list, alias="SESGUARD_TRAIL_BUCKETS")
    """comma-separated names of the trail buckets whose objects the queue's S3 notifications may make the worker read,
    beside the bucket of an `s3://` `SESGUARD_BACKFILL_SOURCE`; a notification naming any other bucket is unusable
    (counted, left to the redrive policy), never read
    """

    # ── SPEC §8: the triage desk ─────────────────────────────────────────────────────────────────
    business_hours: str | None = Field(None, alias="SESGUARD_BUSINESS_HOURS")
    """count the contact time-out only inside these hours: days (`Mon-Fri`, `Sun-Thu`, `Mon,Wed-Fri`), one local window
    (`09:00-18:00`; `24:00` ends at midnight; no overnight windows) and an IANA time zone, e.g. `Mon-Fri 09:00-18:00
    Europe/Berlin`; each day's window is placed by that zone's wall clock, so it follows daylight saving time
    """
    learning_report: bool = Field(True, alias="SESGUARD_LEARNING_REPORT")
    """`false`: no learning report in the alert channel (`/sesguard learned` still answers)"""
    digest_hour: int | None = Field(None, alias="SESGUARD_DIGEST_HOUR", ge=0, le=23)
    """the UTC hour (0–23) of the daily digest in the alert channel: the figures of the 24 hours before that hour
    (see the triage desk); unset: no digest
    """

    # ── SPEC §10: triage context ─────────────────────────────────────────────────────────────────
    owner_tags: CommaSeparated = Field(default_factory=lambda: list(OWNER_TAGS), alias="SESGUARD_OWNER_TAGS")
    """comma-separated IAM tag keys (of the user or role, matched whatever their case, tried in this order) whose value
    names the identity's owner: an e-mail (→ `users.lookupByEmail`) or a Slack user ID; see the triage context
    """
    known_networks: CommaSeparated = Field(default_factory=list, alias="SESGUARD_KNOWN_NETWORKS")
    """the organisation's own networks, comma-separated CIDRs each optionally `=label` (`198.51.100.0/24=Berlin
    office,2001:db8::/32=VPN`); an address in one is shown with its label. A bad entry stops start-up naming its
    position
    """

    # ── SPEC §11: operating it ───────────────────────────────────────────────────────────────────
    metrics_port: int | None = Field(None, alias="SESGUARD_METRICS_PORT", ge=0, le=65535)
    """the worker's `GET /metrics` (Prometheus text format) listens on this port (0–65535; `0` binds any free port
    and names it in the `metrics on http://0.0.0.0:N/metrics` log line); unset: the worker serves none. `serve`
    always has `/metrics` on its own port
    """
    log_format: str = Field("text", alias="SESGUARD_LOG_FORMAT")
    """`json`: every line `serve`, `socket`, `worker` and `poll` write to stderr is one JSON object (`time`,
    `level`, `logger`, `message`, `fields`), `poll --once`'s result lines included; `text`: readable lines
    """

    _csv_fields = field_validator("slack_triagers", "aws_regions", "role_arns", "accounts_exclude", "owner_tags",
                                  "known_networks", "trail_buckets", mode="before")(_csv)

    @field_validator("trail_buckets")
    @classmethod
    def _bucket_names(cls, value: list[str]) -> list[str]:
        return _each_entry(value, is_trail_bucket, "an S3 bucket name (3-63 of a-z 0-9 . -)")

    @field_validator("owner_tags")
    @classmethod
    def _owner_tags(cls, value: list[str]) -> list[str]:
        # IAM's tag key pattern (`[\p{L}\p{Z}\p{N}_.:/=+\-@]+`, 1–128): Python's `\w` is its letters and digits.
        return _each_entry(value, re.compile(r"[\w .:/=+@-]{1,128}").fullmatch,
                           "an IAM tag key (1 to 128 letters, digits, spaces and _.:/=+-@)")

    @field_validator("known_networks")
    @classmethod
    def _known_networks(cls, value: list[str]) -> list[str]:
        for number, entry in enumerate(value, 1):
            try:
                parse_network(entry)
            except ValueError as exc:  # the entry is named by position: a pasted secret is never echoed
                raise ValueError(f"entry {number}: {exc}") from None
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        value = value.strip().lower() or "text"  # `SESGUARD_LOG_FORMAT=` in a .env is not set
        if value not in LOG_FORMATS:
            raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")
        return value

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_port(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("org_role_name")
    @classmethod
    def _org_role_name(cls, value: str | None) -> str | None:
        if not value:
            return None
        # It goes into a role ARN sent to STS: IAM's own pattern for a role name, after an optional path.
        if not re.fullmatch(r"([\w+=,.@-]+/)*[\w+=,.@-]{1,64}", value):
            raise ValueError("must be an IAM role name (letters, digits and +=,.@_-; an optional path/ before it)")
        return value

    @field_validator("accounts_exclude")
    @classmethod
    def _account_ids(cls, value: list[str]) -> list[str]:
        return _each_entry(value, re.compile(r"\d{12}").fullmatch, "a 12-digit AWS account ID")

    @field_validator("slack_alert_channel")
    @classmethod
    def _channel_id(cls, value: str | None) -> str | None:
        if not value:  # `SLACK_ALERT_CHANNEL=` in a .env is not set, and `require` says so
            return None
        # An ID, not a name: Slack would take a name too, but a renamed channel would then lose the alerts.
        if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", value):
            raise ValueError("must be a channel ID such as C0123456789, not its name")
        return value

    @field_validator("slack_triagers")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        # IDs, not names: `@alice` or an e-mail would start up silently and then match no click at all.
        for number, user_id in enumerate(value, 1):
            if not _USER_ID.fullmatch(user_id):  # not echoed, as no invalid value is
                raise ValueError(f"entry {number} is not a Slack user ID such as U0123ABCD (U… or W…), "
                                 "not a name or @handle")
        return value

    @field_validator("slack_triage_usergroup")
    @classmethod
    def _usergroup_id(cls, value: str | None) -> str | None:
        if not value or not value.strip():  # blank in a .env is not set: then start-up warns as it does unset
            return None
        if not _USERGROUP_ID.fullmatch(value.strip()):
            raise ValueError("must be a user group ID such as S0123ABCD, not its name or @handle")
        return value.strip()

    @field_validator("slack_api_url")
    @classmethod
    def _web_api_url(cls, value: str) -> str:
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in ("lookup", "sqs") and not re.fullmatch(r"s3://[^/]+(/.*)?", value):
            raise ValueError("must be lookup, s3://bucket/prefix or sqs")
        return value

    @field_validator("backfill_source")
    @classmethod
    def _backfill_source(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value == "lookup" or re.fullmatch(r"s3://[^/]+(/.*)?", value):
            return value
        if is_engine_url(value):
            try:
                parse_engine_url(value)
            except UnsafeValue:  # not echoed: a pasted secret would be
                raise ValueError("athena:// needs database.table (lower-case letters, digits, _), lake:// an "
                                 "event data store ID or ARN") from None
            return value
        raise ValueError("must be lookup, s3://bucket/prefix, athena://database.table or lake://<event data store>")

    @field_validator("backfill_days")
    @classmethod
    def _backfill_reach(cls, value: float, info: ValidationInfo) -> float:
        # LookupEvents keeps 90 days; a SQL engine keeps what the trail holds.
        if value > 90 and not is_engine_url(info.data.get("backfill_source") or ""):
            raise ValueError("must be at most 90 (LookupEvents' reach) unless SESGUARD_BACKFILL_SOURCE is "
                             "athena://… or lake://…")
        return value

    @model_validator(mode="after")
    def _queue_for_sqs(self) -> Settings:
        if self.source == "sqs" and not self.sqs_queue_url:
            raise ValueError("SESGUARD_SOURCE=sqs needs SESGUARD_SQS_QUEUE_URL (the queue's URL)")
        if self.source == "sqs" and is_engine_url(self.backfill_source or ""):
            # Said at start-up rather than consuming without the baseline the operator asked for.
            raise ValueError("SESGUARD_BACKFILL_SOURCE=athena://… or lake://… backfills the lookup and s3:// "
                             "sources; with SESGUARD_SOURCE=sqs use lookup or s3://bucket/prefix")
        return self

    @field_validator("auto_investigate")
    @classmethod
    def _auto_investigate(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in AUTO_INVESTIGATE_CHOICES:
            raise ValueError(f"must be one of {', '.join(AUTO_INVESTIGATE_CHOICES)}")
        return value

    @field_validator("business_hours")
    @classmethod
    def _business_hours(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        parse_business_hours(value)  # its ValueError names what is wrong
        return value.strip()

    @field_validator("role_arns")
    @classmethod
    def _role_arns(cls, value: list[str]) -> list[str]:
        for number, arn in enumerate(value, 1):
            if not arn.startswith("arn:") or ":role/" not in arn:  # not echoed: a pasted secret would be
                raise ValueError(f"entry {number} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        return value

    @field_validator("pagerduty_routing_key")
    @classmethod
    def _routing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9]{32}", value.get_secret_value()):
            raise ValueError("must be the 32-character integration key of an Events API v2 integration")
        return value

    @field_validator("aws_regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one region")
        return value

    @property
    def alert_channel(self) -> str:
        """SLACK_ALERT_CHANNEL, for what posts there; SettingsError when it is not set."""
        return _set(self.slack_alert_channel, "SLACK_ALERT_CHANNEL")

    @property
    def readable_trail_buckets(self) -> frozenset[str]:
        """The buckets a queue's notifications may make the worker read: SESGUARD_TRAIL_BUCKETS, and the
        bucket of an s3:// SESGUARD_BACKFILL_SOURCE or SESGUARD_SOURCE."""
        configured = [url for url in (self.backfill_source, self.source) if url and url.startswith("s3://")]
        return frozenset(self.trail_buckets) | {url[len("s3://"):].split("/", 1)[0] for url in configured}

    @property
    def queue_url(self) -> str:
        return _set(self.sqs_queue_url, "SESGUARD_SQS_QUEUE_URL")

    @property
    def bot_token(self) -> str:
        return _set(self.slack_bot_token, "SLACK_BOT_TOKEN").get_secret_value()

    @property
    def app_token(self) -> str:
        return _set(self.slack_app_token, "SLACK_APP_TOKEN").get_secret_value()

    @property
    def routing_key(self) -> str:
        return _set(self.pagerduty_routing_key, "PAGERDUTY_ROUTING_KEY").get_secret_value()

    def require(self, *names: str) -> None:
        """Stop start-up when a setting this command needs is missing (names as in the environment)."""
        for name in names:
            field_name = next(k for k, f in type(self).model_fields.items() if _env_name(k, f) == name)
            if not getattr(self, field_name):
                raise SettingsError(f"sesguard: {name} is not set (see .env.example)")


def _set(value: _Value | None, name: str) -> _Value:
    if not value:
        raise SettingsError(f"sesguard: {name} is not set (see .env.example)")
    return value


def _env_name(field_name: str, field) -> str:
    alias = field.alias or field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    return str(alias or field_name.upper())


def load_settings(**overrides: Any) -> Settings:
    """The settings, or SettingsError naming the first bad one (its value is never echoed: it may be a secret)."""
    return _load(Settings, overrides)


def load_detection_settings(**overrides: Any) -> DetectionSettings:
    """Detection's settings alone (`sesguard scan`): no Slack setting is read, so none can stop it."""
    return _load(DetectionSettings, overrides)


_Model = TypeVar("_Model", bound=DetectionSettings)


def _load(model: type[_Model], overrides: dict[str, Any]) -> _Model:
    try:
        return model(**overrides)
    except ValidationError as exc:
        raise SettingsError(f"sesguard: {_first_problem(model, exc)}") from None


def _first_problem(model: type[DetectionSettings], exc: ValidationError) -> str:
    error = exc.errors()[0]
    if not error.get("loc"):  # a rule between settings (a model validator): its words name them
        return f"invalid settings: {error['ctx']['error']}"
    location = str(error["loc"][0])
    fields = model.model_fields
    name = next((_env_name(k, f) for k, f in fields.items() if location in (k, _env_name(k, f))), location)
    return f"invalid setting {name}: {reason(error)}"


def reason(error: Any) -> str:
    """What is wrong, in a validator's own words (without pydantic's "Value error, " before them)."""
    return error["ctx"]["error"] if error["type"] == "value_error" else error["msg"]
