"""The one log format of every sesguard process, on stderr: readable lines, every one printable, by default;
with SESGUARD_LOG_FORMAT=json one JSON object a line (SPEC §11), for log pipelines.

A JSON line has the same five keys every time: `time` (UTC, ISO 8601), `level`, `logger`, `message` and
`fields`, the event's own values (`extra={"fields": {...}}`; an exception's traceback is `fields.exception`).
It is written with every character outside printable ASCII escaped (`\\n`, `\\"`, `\\u001b`, `\\u2028`): a value
from CloudTrail or Slack can neither break the line nor reach a terminal as an escape sequence.

What a command reports as its result (`poll --once`'s pass, the queue drained) goes through the `summary`
logger: in the readable format it is the bare line it always was, in JSON a line like every other, with its
figures as fields. It is written at any log level: a quiet `poll --once` still says what it did.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import types
from datetime import UTC, datetime
from typing import Any

from bot.printable import printable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTINUATION = "  "  # before every line of a traceback
LOG_FORMATS = ("text", "json")
SUMMARY_LOGGER = "sesguard.summary"
# A value longer than this is cut (a traceback, an AWS answer quoted whole): one log line stays one line a
# pipeline takes, whatever a record carried.
MAX_VALUE_CHARS = 8192


class PrintableFormatter(logging.Formatter):
    """Log messages carry S3 keys, file names and AWS error text, which whoever writes the trail bucket
    chooses: a message is made printable, one line, so that no escape sequence reaches the terminal and
    no line break forges a line. A traceback keeps its lines, each made printable and indented: an
    exception's message may hold line breaks, and only a record's own first line starts at the margin."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, exc_info) -> str:
        return _continuation(super().formatException(exc_info))

    def formatStack(self, stack_info: str) -> str:
        return _continuation(super().formatStack(stack_info))


def _continuation(text: str) -> str:
    return "\n".join(CONTINUATION + printable(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time, level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        fields = {str(name): _bounded(value) for name, value in fields.items()} if isinstance(fields, dict) else {}
        if record.exc_info:
            fields["exception"] = _bounded(self.formatException(record.exc_info))
        if record.stack_info:
            fields["stack"] = _bounded(self.formatStack(record.stack_info))
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": _bounded(record.getMessage()),
            "fields": fields,
        }
        # ensure_ascii: every character outside printable ASCII escaped, so the line is safe on any terminal.
        return json.dumps(entry, ensure_ascii=True, default=str, separators=(",", ":"))


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    return value


def formatter(log_format: str, pattern: str = FORMAT) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else PrintableFormatter(pattern)


def configure_logging(level: int = logging.INFO, log_format: str = "text") -> None:
    """Every record to stderr in `log_format`; the summary logger too, whatever `level`."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler])
    summary_log = logging.getLogger(SUMMARY_LOGGER)
    for old in list(summary_log.handlers):  # a command run twice in one process (the tests) writes once
        summary_log.removeHandler(old)
    result_handler = logging.StreamHandler(sys.stderr)
    result_handler.setFormatter(formatter(log_format, "%(message)s"))
    summary_log.addHandler(result_handler)
    summary_log.setLevel(logging.INFO)
    summary_log.propagate = False
    if log_format == "json":
        # What Python would otherwise write to stderr by itself comes through the log too, as JSON:
        # warnings, and a traceback that no one caught (in the main thread or another).
        logging.captureWarnings(True)
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def summary(line: str, failed: bool = False, /, **fields: Any) -> None:
    """A command's result line, with its figures as the JSON line's fields; a part that failed is a warning.
    (Positional only: a field may be called `failed` too, as the notifier's count is.)"""
    logging.getLogger(SUMMARY_LOGGER).log(logging.WARNING if failed else logging.INFO, "%s", line,
                                          extra={"fields": fields})


def _log_uncaught(kind: type[BaseException], error: BaseException, trace: types.TracebackType | None) -> None:
    logging.getLogger("sesguard").critical("uncaught %s", kind.__name__, exc_info=(kind, error, trace))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("sesguard").critical(
        "uncaught %s in thread %s", args.exc_type.__name__, args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))


def error_line(text: str, log_format: str) -> str:
    """A line a command writes before logging is set up (a setting that stops start-up), in the log's format."""
    if log_format != "json":
        return text
    record = logging.LogRecord("sesguard", logging.ERROR, __file__, 0, "%s", (text,), None)
    return JsonFormatter().format(record)
