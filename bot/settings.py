"""Configuration from the environment and a `.env` file (SPEC §5); the environment wins.

A missing or invalid setting stops start-up with one line naming it (`SettingsError`), never a
pydantic traceback. Secrets are `SecretStr`, so that they never print in logs or error messages.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import SettingsError  # noqa: F401  (raised here, caught by the CLI)
from detection import DEFAULT_DATABASE_URL
from detection.baseline import Tuning
from detection.record import IDENTITY_KEYS


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

# Lists are written comma-separated in the environment, not as JSON: parsed by `_csv`, never decoded.
CommaSeparated = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True)

    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_alert_channel: str | None = Field(None, alias="SLACK_ALERT_CHANNEL", pattern=r"^[CGD][A-Z0-9]{2,}$")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    slack_triagers: CommaSeparated = Field(default_factory=list, alias="SLACK_TRIAGERS")
    slack_triage_usergroup: str | None = Field(None, alias="SLACK_TRIAGE_USERGROUP")

    database_url: str = Field(DEFAULT_DATABASE_URL, alias="DATABASE_URL")

    aws_regions: CommaSeparated = Field(default_factory=lambda: ["us-east-1"],
                                   validation_alias=AliasChoices("AWS_REGIONS"))
    source: str = Field("lookup", alias="SESGUARD_SOURCE", pattern=r"^(lookup|s3://[^/]+(/.*)?)$")
    role_arns: CommaSeparated = Field(default_factory=list, alias="SESGUARD_ROLE_ARNS")
    identity_key: str = Field("principal", alias="SESGUARD_IDENTITY_KEY")
    learning_days: float = Field(7, alias="SESGUARD_LEARNING_DAYS", ge=0)
    forget_days: float = Field(28, alias="SESGUARD_FORGET_DAYS", gt=0)
    group_minutes: float = Field(60, alias="SESGUARD_GROUP_MINUTES", ge=0)
    poll_seconds: float = Field(300, alias="SESGUARD_POLL_SECONDS", gt=0)
    lookback_minutes: float = Field(20, alias="SESGUARD_LOOKBACK_MINUTES", ge=0)
    backfill_days: float = Field(90, alias="SESGUARD_BACKFILL_DAYS", ge=0, le=90)
    contact_timeout_minutes: float = Field(120, alias="SESGUARD_CONTACT_TIMEOUT_MINUTES", gt=0)
    # Matching calls are kept this long for `/sesguard history` and de-duplication by eventID.
    event_retention_days: float = Field(400, alias="SESGUARD_EVENT_RETENTION_DAYS", gt=0)
    # A worker that stops renewing its scheduler lease for this long is taken over by another.
    lease_seconds: float = Field(60, alias="SESGUARD_LEASE_SECONDS", gt=0)
    port: int = Field(3000, alias="PORT", ge=1, le=65535)

    # ── SPEC §6: paging and containment ──────────────────────────────────────────────────────────
    # The Events API v2 integration key of the PagerDuty service to page; without it nothing is paged.
    pagerduty_routing_key: SecretStr | None = Field(None, alias="PAGERDUTY_ROUTING_KEY")
    pagerduty_events_url: str = Field(PAGERDUTY_EVENTS_URL, alias="PAGERDUTY_EVENTS_URL", pattern=r"^https?://\S+$")
    # Deactivate access key / Revoke role sessions on the alerts: they change IAM, so they are opt-in.
    response_actions: bool = Field(False, alias="SESGUARD_RESPONSE_ACTIONS")

    _csv_fields = field_validator("slack_triagers", "aws_regions", "role_arns", mode="before")(_csv)

    @field_validator("identity_key")
    @classmethod
    def _known_identity_key(cls, value: str) -> str:
        if value not in IDENTITY_KEYS:
            raise ValueError(f"must be one of {', '.join(IDENTITY_KEYS)}")
        return value

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
    def tuning(self) -> Tuning:
        return Tuning(
            learning=timedelta(days=self.learning_days),
            forget=timedelta(days=self.forget_days),
            group=timedelta(minutes=self.group_minutes),
        )

    def require(self, *names: str) -> None:
        """Stop start-up when a setting this command needs is missing (names as in the environment)."""
        for name in names:
            field_name = next(k for k, f in type(self).model_fields.items() if _env_name(k, f) == name)
            if not getattr(self, field_name):
                raise SettingsError(f"sesguard: {name} is not set (see .env.example)")


def _env_name(field_name: str, field) -> str:
    alias = field.alias or field.validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    return str(alias or field_name.upper())


def load_settings(**overrides: object) -> Settings:
    """The settings, or SettingsError naming the first bad one (its value is never echoed: it may be a secret)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = str(error["loc"][0]) if error.get("loc") else "a setting"
        fields = Settings.model_fields
        name = next((_env_name(k, f) for k, f in fields.items() if location in (k, _env_name(k, f))), location)
        raise SettingsError(f"sesguard: invalid setting {name}: {error['msg']}") from None
