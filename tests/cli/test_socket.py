"""`sesguard socket` (SPEC §2): the Slack app over Socket Mode, as a real process.

A local stand-in plays Slack's part of the protocol: `apps.connections.open` (with SLACK_APP_TOKEN) hands
out a WebSocket URL; on it Slack says `hello`, then delivers a slash command in an envelope; the app
acknowledges the envelope on the socket and answers through the command's `response_url`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.records import REPO

pytestmark = pytest.mark.processes

APP_TOKEN = "xapp-1-A0SESG-1-socketmodetoken"
BOT_TOKEN = "xoxb-socket-mode-test"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
PATIENCE_SECONDS = 60  # a bound on waiting for the process, not a measurement


def _frame(text: str) -> bytes:
    """A server-to-client text frame (unmasked)."""
    data = text.encode()
    if len(data) < 126:
        return bytes([0x81, len(data)]) + data
    return bytes([0x81, 126]) + struct.pack("!H", len(data)) + data


def _read_frame(stream) -> tuple[int, bytes]:
    """A client-to-server frame (masked): (opcode, payload)."""
    first, second = stream.read(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    mask = stream.read(4)
    payload = bytes(byte ^ mask[i % 4] for i, byte in enumerate(stream.read(length)))
    return first & 0x0F, payload


class SocketModeSlack(ThreadingHTTPServer):
    """Slack's side of Socket Mode: the Web API call that opens a connection, the WebSocket, response URLs."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port = self.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api/"
        self.envelopes: queue.Queue[dict] = queue.Queue()  # what Slack delivers on the socket
        self.acks: queue.Queue[dict] = queue.Queue()  # what the app sends back on it
        self.responses: queue.Queue[tuple[str, dict]] = queue.Queue()  # what reached a response URL
        self.api_calls: list[tuple[str, str]] = []  # (method, the token it came with)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/respond/{name}"


class _Handler(BaseHTTPRequestHandler):
    server: SocketModeSlack

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/respond/"):
            self.server.responses.put((self.path.rsplit("/", 1)[1], json.loads(body)))
            return self._json({"ok": True})
        method = self.path.rsplit("/", 1)[1]
        self.server.api_calls.append((method, self.headers.get("Authorization", "")))
        if method == "apps.connections.open":
            return self._json({"ok": True, "url": f"ws://127.0.0.1:{self.server.port}/link"})
        return self._json({"ok": True})

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() != "websocket":
            return self._json({"ok": False}, 404)
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WEBSOCKET_GUID).encode()).digest())
        self.send_response(101, "Switching Protocols")
        for name, value in {"Upgrade": "websocket", "Connection": "Upgrade",
                            "Sec-WebSocket-Accept": accept.decode()}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(_frame(json.dumps({"type": "hello", "num_connections": 1,
                                            "connection_info": {"app_id": "A0SESG"}})))
        self.wfile.flush()
        sender = threading.Thread(target=self._deliver, daemon=True)
        sender.start()
        while True:
            try:
                opcode, payload = _read_frame(self.rfile)
            except (ValueError, OSError):  # the app went away
                return
            if opcode == 0x1:
                self.server.acks.put(json.loads(payload))
            elif opcode == 0x9:  # ping
                self.wfile.write(bytes([0x8A, len(payload)]) + payload)
                self.wfile.flush()
            elif opcode == 0x8:
                return

    def _deliver(self) -> None:
        while True:
            envelope = self.server.envelopes.get()
            self.wfile.write(_frame(json.dumps(envelope)))
            self.wfile.flush()

    def _json(self, value: dict, status: int = 200) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def socket_slack():
    server = SocketModeSlack()
    yield server
    server.shutdown()
    server.server_close()


def test_socket_mode_connects_with_the_app_token_acks_envelopes_and_answers_commands(socket_slack, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESGUARD_", "SLACK_", "DATABASE_URL", "AWS_"))}
    env.update(PYTHONPATH=str(REPO), SLACK_APP_TOKEN=APP_TOKEN, SLACK_BOT_TOKEN=BOT_TOKEN,
               SLACK_API_URL=socket_slack.api_url,
               SLACK_TRIAGERS="UTRIAGER1", DATABASE_URL=f"sqlite:///{tmp_path / 'sesguard.db'}")
    process = subprocess.Popen([sys.executable, "-m", "bot", "socket"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        socket_slack.envelopes.put({
            "envelope_id": "env-1", "type": "slash_commands", "accepts_response_payload": True,
            "payload": {"token": "legacy", "team_id": "T0TEAM", "team_domain": "test", "channel_id": "C0ALERTS",
                        "channel_name": "security-alerts", "user_id": "UOUTSIDER", "user_name": "outsider",
                        "command": "/sesguard", "text": "help", "api_app_id": "A0SESG",
                        "response_url": socket_slack.response_url("help"), "trigger_id": "trigger-1"},
        })
        ack = socket_slack.acks.get(timeout=PATIENCE_SECONDS)
        assert ack["envelope_id"] == "env-1"
        name, answer = socket_slack.responses.get(timeout=PATIENCE_SECONDS)
        assert name == "help" and answer["response_type"] == "ephemeral" and "/sesguard history" in answer["text"]
        assert ("apps.connections.open", f"Bearer {APP_TOKEN}") in socket_slack.api_calls
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=PATIENCE_SECONDS)[0]
        assert APP_TOKEN not in output and BOT_TOKEN not in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
