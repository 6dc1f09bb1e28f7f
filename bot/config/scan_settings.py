"""The detection settings `scan` reads, without pydantic.

`scan` is a command-line tool that often runs on a laptop over a folder; loading pydantic for five
values would double its start-up. The names, defaults, ranges and the one-line errors are those of
`bot.config.settings.Settings`, from the environment and a `.env` file (the environment wins).
"""

from __future__ import annotations

import math
import os
from datetime import timedelta

from dotenv import dotenv_values

from bot.config.errors import SettingsError
from detection.baseline import LONGEST, Tuning
from detection.record import IDENTITY_KEYS

DEFAULTS = Tuning()
DAY, MINUTE = timedelta(days=1), timedelta(minutes=1)


def _number(env: dict, name: str, default: float, unit: timedelta, positive: bool = False) -> float:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"sesguard: invalid setting {name}: not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise SettingsError(f"sesguard: invalid setting {name}: must be {'above' if positive else 'at least'} 0")
    if value > LONGEST / unit:
        raise SettingsError(f"sesguard: invalid setting {name}: must be at most {LONGEST / unit:g}")
    return value


def _prefixes(env: dict, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated, as `Settings` reads lists; set but empty means none."""
    text = env.get(name)
    if text is None:
        return default
    return tuple(part.strip() for part in text.split(",") if part.strip())


def scan_settings() -> tuple[Tuning, str]:
    """(tuning, identity key) from the environment and `.env`."""
    env = {**dotenv_values(".env"), **os.environ}
    identity_key = (env.get("SESGUARD_IDENTITY_KEY") or "principal").strip()
    if identity_key not in IDENTITY_KEYS:
        raise SettingsError("sesguard: invalid setting SESGUARD_IDENTITY_KEY: "
                            f"must be one of {', '.join(IDENTITY_KEYS)}")
    tuning = Tuning(
        learning=timedelta(days=_number(env, "SESGUARD_LEARNING_DAYS", DEFAULTS.learning / DAY, DAY)),
        forget=timedelta(days=_number(env, "SESGUARD_FORGET_DAYS", DEFAULTS.forget / DAY, DAY, positive=True)),
        group=timedelta(minutes=_number(env, "SESGUARD_GROUP_MINUTES", DEFAULTS.group / MINUTE, MINUTE)),
        exercise_user_agents=_prefixes(env, "SESGUARD_EXERCISE_USER_AGENTS", DEFAULTS.exercise_user_agents),
    )
    return tuning, identity_key


def engine_settings():
    """(EngineSettings, SESGUARD_ATHENA_TABLE, SESGUARD_LAKE_EVENT_DATA_STORE) for `scan athena://… lake://…`,
    checked as `bot.config.settings.Settings` checks them (values never echoed)."""
    import re

    from detection.sources.sql.engine import EngineSettings
    from detection.sources.sql.running import DEFAULT_MAX_GB, Limits
    from detection.sources.sql.values import UnsafeValue, athena_table, event_data_store

    env = {**dotenv_values(".env"), **os.environ}
    workgroup = (env.get("SESGUARD_ATHENA_WORKGROUP") or "primary").strip()
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,128}", workgroup):
        raise SettingsError("sesguard: invalid setting SESGUARD_ATHENA_WORKGROUP: must be a workgroup name")
    output = (env.get("SESGUARD_ATHENA_OUTPUT") or "").strip() or None
    if output is not None and not re.fullmatch(r"s3://[^/\s]+(/\S*)?", output):
        raise SettingsError("sesguard: invalid setting SESGUARD_ATHENA_OUTPUT: must be s3://bucket/prefix/")
    max_gb = _number(env, "SESGUARD_SQL_MAX_GB", DEFAULT_MAX_GB, DAY, positive=True)
    table = (env.get("SESGUARD_ATHENA_TABLE") or "").strip() or None
    store = (env.get("SESGUARD_LAKE_EVENT_DATA_STORE") or "").strip() or None
    try:
        if table:
            athena_table(table)
    except UnsafeValue:
        raise SettingsError("sesguard: invalid setting SESGUARD_ATHENA_TABLE: must be database.table") from None
    try:
        store = event_data_store(store) if store else None
    except UnsafeValue:
        raise SettingsError("sesguard: invalid setting SESGUARD_LAKE_EVENT_DATA_STORE: must be an event data "
                            "store ID or ARN") from None
    return EngineSettings(workgroup, output, Limits(max_gb=max_gb)), table, store
