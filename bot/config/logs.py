"""The one log format of every sesguard process, on stderr, every line of it printable."""

from __future__ import annotations

import logging
import sys

from bot.printable import printable

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTINUATION = "  "  # before every line of a traceback


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


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
