"""`sesguard scan`'s settings: detection's part of the one settings model, the command line's flags over it.

`scan` loads `DetectionSettings` alone, never the Slack settings (see `bot.config.settings`). A tuning flag
(`--learning-days`, `--forget-days`, `--group-minutes`) is checked by the same rules as the setting it
overrides; only the words name the flag instead of the variable.
"""

from __future__ import annotations

from pydantic import ValidationError

from bot.config.errors import SettingsError
from bot.config.settings import DetectionSettings, load_detection_settings, reason
from detection.baseline import Tuning

# The setting each tuning flag overrides.
FLAGS = {"learning_days": "--learning-days", "forget_days": "--forget-days", "group_minutes": "--group-minutes"}
# A flag below its setting's bound, in the command line's words (a bound above says "must be at most …" itself).
_BELOW_BOUND = {"greater_than_equal": "must be a number, not negative", "greater_than": "must be a number, above 0"}


def load_scan_settings(**flags: float | None) -> DetectionSettings:
    """Detection's settings from the environment and `.env`, each flag given (not None) over its setting."""
    settings = load_detection_settings()
    for field, value in flags.items():
        if value is None:
            continue
        try:
            settings.override(field, value)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise SettingsError(f"sesguard scan: {FLAGS[field]} {_BELOW_BOUND.get(error['type']) or reason(error)}") \
                from None
    return settings


def scan_settings() -> tuple[Tuning, str]:
    """(tuning, identity key) from the environment and `.env`, as `scan` reads them without flags."""
    settings = load_scan_settings()
    return settings.tuning, settings.identity_key
