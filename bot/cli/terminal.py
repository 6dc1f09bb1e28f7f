"""What `scan` and `demo` print for a person: the signal table and the skipped files and records.

Every value shown here may come from CloudTrail or from a file name, so it passes `printable()` first:
no terminal escape sequence, no newline that would forge a line of output.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from bot.printable import printable
from detection.scan import ScanSummary
from detection.signals import Signal

# Bad records are named on stderr; past this many a run says how many more there were.
MAX_NAMED_PROBLEMS = 50
HEADER = ("FIRST SEEN", "SEVERITY", "ACCOUNT", "IDENTITY", "CALLS", "REGIONS", "SOURCE IPS", "STATUS")
# Columns that give up room, in this order, when the table is wider than the terminal; and how narrow
# each may get.
SHRINKABLE = {"CALLS": 5, "SOURCE IPS": 7, "REGIONS": 7, "IDENTITY": 20}
IDENTITY_LIMIT = 80  # even on a wide terminal: the name is at the end, the account at the start
GAP = "  "


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clip_middle(text: str, limit: int) -> str:
    """Keep both ends of an ARN: the account and partition at the start, the user, role or session name
    at the end, which is what a reader looks for."""
    if len(text) <= limit:
        return text
    tail = (limit - 1) * 2 // 3
    return text[: limit - 1 - tail] + "…" + text[len(text) - tail:]


def signal_table(signals: list[Signal], width: int | None = None) -> str:
    """A readable table, one row a signal, fitted to `width` columns when given (a terminal's width)."""
    if not signals:
        return "no signals\n"
    rows = [
        [
            s.to_dict()["first_seen"], s.severity, s.account_id, s.identity,
            f"{s.event_count} ({', '.join(s.event_names)})", ",".join(s.regions) or "-",
            ",".join(s.source_ips) or "-", s.status,
        ]
        for s in signals
    ]
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [list(HEADER), *rows]) for i in range(len(HEADER))]
    identity = HEADER.index("IDENTITY")
    widths[identity] = min(widths[identity], IDENTITY_LIMIT)
    if width:
        excess = sum(widths) + len(GAP) * (len(HEADER) - 1) - width
        for name, narrowest in SHRINKABLE.items():
            if excess <= 0:
                break
            column = HEADER.index(name)
            given = min(excess, max(widths[column] - narrowest, 0))
            widths[column] -= given
            excess -= given
    lines = []
    for row in [list(HEADER), *rows]:
        cells = [clip_middle(cell, w) if i == identity else clip(cell, w)
                 for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append(GAP.join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip())
    return "\n".join(lines) + "\n"


def report_problems(summary: ScanSummary, stream: TextIO | None = None) -> None:
    """Corrupt files and bad records, named on stderr (their names made printable)."""
    stream = stream or sys.stderr
    for problem in summary.corrupt_files:
        print(f"sesguard: skipped file {printable(problem)}", file=stream)
    for problem in summary.bad_records[:MAX_NAMED_PROBLEMS]:
        print(f"sesguard: skipped {printable(problem)}", file=stream)
    if summary.bad_count > MAX_NAMED_PROBLEMS:
        print(f"sesguard: … and {summary.bad_count - MAX_NAMED_PROBLEMS} more bad records", file=stream)


def terminal_width(stream: TextIO) -> int | None:
    """The width to fit a table to: a terminal's (COLUMNS wins, as for `ls`); none for a pipe or a file,
    whose reader gets every character."""
    return shutil.get_terminal_size(fallback=(100, 24)).columns if stream.isatty() else None
