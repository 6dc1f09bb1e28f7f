"""The one log format: S3 keys, file names and AWS error text in log lines and tracebacks reach the
terminal printable, one log line a line."""

from __future__ import annotations

import io
import logging

from bot.config.logs import FORMAT, PrintableFormatter

HOSTILE = "key\x1b]0;pwned\x07\x1b[2J\nERROR forged: line\r\x85\u2028end"


def test_messages_and_tracebacks_are_printable_and_keep_their_own_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PrintableFormatter(FORMAT))
    log = logging.Logger("sesguard-test")
    log.addHandler(handler)
    log.warning("skipped %s", HOSTILE)
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        log.exception("reading %s failed", HOSTILE)
    text = stream.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    first, second, *traceback, end = text.split("\n")
    assert first.endswith("WARNING sesguard-test: skipped key?]0;pwned??[2J?ERROR forged: line???end")
    assert second.endswith("ERROR sesguard-test: reading key?]0;pwned??[2J?ERROR forged: line???end failed")
    # the traceback keeps its lines, indented: the exception's own line break starts no line at the margin
    assert traceback[0] == "  Traceback (most recent call last):" and end == ""
    assert traceback[-2:] == ["  ValueError: key?]0;pwned??[2J", "  ERROR forged: line???end"]
    assert all(line.startswith("  ") for line in traceback)
