"""Slow and silent HTTP clients against a real `sesguard serve` (SPEC §4: Slack's 3-second deadline).

`serve` is the app's public endpoint: anyone can open connections to it. A client that sends half a
request head and then nothing, or connects and sends nothing at all, must cost a socket and never a
request thread: signed Slack requests and `/healthz` are answered in time while such connections stay
open, and the server closes them once they have been quiet for `QUIET_CONNECTION_SECONDS`.
"""

from __future__ import annotations

import socket
import time

import pytest

from bot.slack.web import QUIET_CONNECTION_SECONDS
from tests.support.sesguard_processes import TRIAGER, wait_for
from tests.support.slack_signing import get

pytestmark = [pytest.mark.processes, pytest.mark.slow]

SLACK_ACK_DEADLINE_SECONDS = 3.0
# As many as the Procfile's old `--workers 2 --threads 8` had threads: each one held a thread for good.
SLOW_CLIENTS = 16
HALF_A_REQUEST = b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
# The server looks for quiet connections about once a second; the rest is this machine being busy.
CLOSING_SLACK_SECONDS = 5.0
# A request is given this long, so that a server that never answers fails the test instead of hanging it.
GIVE_UP_SECONDS = 10.0


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def slow_client(port: int, first_bytes: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port))
    if first_bytes:
        client.sendall(first_bytes)
    return client


def closed_by_server(client: socket.socket, deadline: float) -> bool:
    """Whether the server closed this connection before the deadline (it sends nothing before it does)."""
    client.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        return client.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def timed(call) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        status = call().status
    except OSError as error:  # no answer at all (timed out, or the connection dropped)
        status = type(error).__name__
    return status, round(time.monotonic() - started, 3)


def test_slow_and_silent_clients_hold_no_thread_and_are_closed_once_quiet(deployment):
    served = deployment.serve()
    port = port_of(served.base)
    slow = [slow_client(port, HALF_A_REQUEST) for _ in range(SLOW_CLIENTS)]
    silent = [slow_client(port, b"") for _ in range(SLOW_CLIENTS)]
    opened = time.monotonic()
    try:
        def command(text: str):
            return served.command(text, TRIAGER, deployment.slack.response_url(text), timeout=GIVE_UP_SECONDS)

        answers = {f"/sesguard {text}": timed(lambda text=text: command(text)) for text in ("help", "status")}
        answers["/healthz"] = timed(lambda: get(f"{served.base}/healthz", timeout=GIVE_UP_SECONDS))
        assert {what: status for what, (status, _) in answers.items()} == dict.fromkeys(answers, 200), answers
        assert max(seconds for _, seconds in answers.values()) < SLACK_ACK_DEADLINE_SECONDS, answers
        wait_for(lambda: {name for name, _ in deployment.slack.responses} == {"help", "status"}, "both answers")

        deadline = opened + QUIET_CONNECTION_SECONDS + CLOSING_SLACK_SECONDS
        still_open = [client for client in slow + silent if not closed_by_server(client, deadline)]
        assert still_open == [], f"{len(still_open)} quiet connections still open after {deadline - opened:.0f} s"
        assert served.running.alive
        assert "Traceback" not in served.running.output()
    finally:
        for client in slow + silent:
            client.close()

