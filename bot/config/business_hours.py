"""Business hours (SPEC §8, `SESGUARD_BUSINESS_HOURS`): when the contact time-out's clock runs.

`Mon-Fri 09:00-18:00 Europe/Berlin`: the days (a range or a comma list of ranges, wrapping past Sunday
allowed: `Sun-Thu`, `Fri-Mon`, `Mon,Wed,Fri`), one window of local wall-clock time (start before end;
`24:00` ends at midnight), and an IANA time zone. Deadlines are worked out in that zone's wall-clock time,
day by day, and converted to UTC per day: a day on which the clocks change has its window where the
clocks on the wall put it (09:00 is 07:00 UTC in Berlin's summer, 08:00 in its winter).

Pure functions, no I/O: `parse()` raises ValueError with words an operator understands (never echoing the
value: a setting may hold a pasted secret), `deadline()` adds working minutes to a moment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_FORMAT = re.compile(r"^\s*(?P<days>[A-Za-z,\-]+)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
                     r"\s+(?P<zone>[A-Za-z0-9_+\-/]+)\s*$")
EXAMPLE = "e.g. Mon-Fri 09:00-18:00 Europe/Berlin"
# A deadline further than this is a bug or a setting no operator meant (e.g. one minute a week for years).
MAX_DAYS_AHEAD = 366 * 5


@dataclass(frozen=True)
class BusinessHours:
    weekdays: frozenset[int]  # Monday 0 … Sunday 6
    start: time
    end: time | None  # None: midnight at the end of the day (24:00)
    zone: ZoneInfo

    def window(self, day: date) -> tuple[datetime, datetime] | None:
        """That local day's window in UTC, or None when it is not a business day."""
        if day.weekday() not in self.weekdays:
            return None
        opens = datetime.combine(day, self.start, tzinfo=self.zone)
        closes = (datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone) if self.end is None
                  else datetime.combine(day, self.end, tzinfo=self.zone))
        # Through UTC: a wall-clock time that the clocks skip (a spring-forward gap) becomes the moment
        # just after it; one they pass twice (autumn) is taken the first time (fold=0).
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def deadline(self, start: datetime, minutes: float) -> datetime:
        """`start` plus `minutes` of time inside business hours (UTC in, UTC out)."""
        left = timedelta(minutes=minutes)
        day = start.astimezone(self.zone).date() - timedelta(days=1)  # a window may begin before `start` locally
        for _ in range(MAX_DAYS_AHEAD):
            found = self.window(day)
            day += timedelta(days=1)
            if found is None:
                continue
            opens, closes = found
            begin = max(opens, start)
            if begin >= closes:
                continue
            if closes - begin >= left:
                return begin + left
            left -= closes - begin
        raise ValueError(f"no deadline within {MAX_DAYS_AHEAD} days")


def _day(name: str) -> int:
    """Monday 0 … Sunday 6, from a name of at least three letters (`Mon`, `monday`, `Thurs`)."""
    for number, full in enumerate(FULL_DAY_NAMES):
        if len(name) >= 3 and full.startswith(name):
            return number
    raise ValueError("a day is not one of Mon, Tue, Wed, Thu, Fri, Sat, Sun")


def _days(spec: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.lower().split(","):
        names = part.split("-")
        if len(names) > 2:
            raise ValueError("the days must be days or ranges of days such as Mon-Fri or Mon,Wed-Fri")
        day, last = _day(names[0]), _day(names[-1])
        days.add(day)
        while day != last:  # a range may wrap past Sunday (Fri-Mon)
            day = (day + 1) % 7
            days.add(day)
    return frozenset(days)


def _end_clock(value: str) -> time | None:
    """The window's end; None for 24:00, the end of the day."""
    return None if value == "24:00" else _clock(value)


def _clock(value: str) -> time:
    hours, minutes = (int(part) for part in value.split(":"))
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise ValueError("a time is not a time of day (00:00 to 23:59, or 24:00 as an end)")
    return time(hours, minutes)


@lru_cache(maxsize=16)
def parse(value: str) -> BusinessHours:
    """`Mon-Fri 09:00-18:00 Europe/Berlin` → BusinessHours; ValueError naming what is wrong."""
    found = _FORMAT.match(value or "")
    if not found:
        raise ValueError(f"must be days, a time window and a time zone, {EXAMPLE}")
    weekdays = _days(found["days"])
    start, end = _clock(found["start"]), _end_clock(found["end"])
    if end is not None and end <= start:
        raise ValueError("the window must end after it starts on the same day (overnight windows are not supported)")
    try:
        zone = ZoneInfo(found["zone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("the time zone is not an IANA time zone such as Europe/Berlin") from None
    return BusinessHours(weekdays, start, end, zone)


def contact_deadline(business_hours: str | None, asked_at: datetime, minutes: float) -> datetime:
    """When an unanswered question escalates: `minutes` later, counted in business hours when they are set."""
    if not business_hours:
        return asked_at + timedelta(minutes=minutes)
    return parse(business_hours).deadline(asked_at, minutes)
