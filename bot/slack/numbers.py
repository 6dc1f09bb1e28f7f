"""Numbers read from Slack (slash-command arguments, button values): ASCII digits only.

Python's `str.isdigit()`, `int()` and `float()` accept far more than an operator types: `int("١")`
(Arabic-Indic) and `int("１")` (fullwidth) are 1, `"²".isdigit()` is true although `int("²")` raises,
`float()` takes `"1_0"`, `"nan"`, `"inf"` and `"1e3"`, and both ignore surrounding whitespace. A
`/sesguard unsuppress ١` once lifted suppression #1. Every number that comes from Slack goes through
here, so that only what it looks like to a reader is accepted.
"""

from __future__ import annotations

import re

_ID = re.compile(r"[0-9]{1,12}")
_DECIMAL = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?")


def ascii_id(value: str) -> int | None:
    """A row id written in ASCII digits (at most 12 of them), or None."""
    return int(value) if isinstance(value, str) and _ID.fullmatch(value) else None


def ascii_decimal(value: str) -> float | None:
    """A non-negative decimal such as `7` or `0.5`, written in ASCII digits, or None."""
    return float(value) if isinstance(value, str) and _DECIMAL.fullmatch(value) else None
