"""What may reach a terminal or a log line from outside: CloudTrail fields, file names, S3 keys and the
error text that quotes them are written by whoever wrote the logs or the trail bucket."""

from __future__ import annotations


def printable(text: object) -> str:
    """The text with every character that is not printable as `?`: no escape sequence (a window title,
    a screen clear), and no line break (newline, carriage return, NEL, U+2028) that would forge a line."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))
