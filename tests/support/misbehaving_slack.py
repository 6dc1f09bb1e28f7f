"""The Slack stand-in of `tests/fakes/slack_api.py` (with all of Slack's rules it keeps), made slower on purpose.

- **Stalls**: a request (an API method, a `response_url`, or every request) waits before Slack looks at
  it, until the test releases it — a Slack that hangs.
- **Held answers**: a call is carried out (the message is in the channel) and its answer is held until
  the test releases it — the window in which a worker can die after Slack posted but before it
  recorded the `ts`. **Held and dropped**: the call waits and is never carried out — the worker died
  before its post reached Slack.

Every hold reports when it was reached (`Hold.reached`), so that tests act in the window instead of
racing sleeps against it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.fakes.slack_api import FakeSlack

# Generous bound on waiting for the test: it only keeps a broken test from hanging.
HOLD_PATIENCE_SECONDS = 60
EVERYTHING = "*"  # a hold's target that every API method and response URL matches


@dataclass
class Hold:
    target: str  # an API method ("chat.postMessage"), "response_url", or EVERYTHING
    before: bool  # held before Slack carries the call out (else: carried out, its answer held)
    discard: bool = False  # (before only) dropped on release, never carried out
    times: int = 1
    reached: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


class MisbehavingSlack(FakeSlack):
    def __init__(self, *args, **kwargs):
        self.holds: list[Hold] = []
        super().__init__(*args, **kwargs)

    # ── test helpers ────────────────────────────────────────────────────────────────────────────

    def _add(self, hold: Hold) -> Hold:
        with self._lock:
            self.holds.append(hold)
        return hold

    def hold_answer(self, method: str, times: int = 1) -> Hold:
        """The next `times` calls of `method` are carried out; their answers wait for the release."""
        return self._add(Hold(method, before=False, times=times))

    def hold_and_drop(self, method: str, times: int = 1) -> Hold:
        """The next `times` calls of `method` wait, then are dropped without being carried out."""
        return self._add(Hold(method, before=True, discard=True, times=times))

    def stall(self, target: str, times: int = 1_000_000) -> Hold:
        """Requests to `target` (a method or "response_url") wait before Slack looks at them, until released."""
        return self._add(Hold(target, before=True, times=times))

    def stall_everything(self) -> Hold:
        """Every request, whatever it asks, waits before Slack looks at it, until released: Slack down."""
        return self.stall(EVERYTHING)

    def release_all(self) -> None:
        with self._lock:
            for hold in self.holds:
                hold.release.set()

    def __exit__(self, *exc: object) -> None:
        self.release_all()
        super().__exit__(*exc)

    # ── the API ─────────────────────────────────────────────────────────────────────────────────

    def _take_hold(self, target: str, before: bool) -> Hold | None:
        with self._lock:
            for hold in self.holds:
                if hold.target in (target, EVERYTHING) and hold.times > 0 and hold.before == before:
                    hold.times -= 1
                    return hold
        return None

    @staticmethod
    def _wait(hold: Hold) -> None:
        hold.reached.set()
        hold.release.wait(HOLD_PATIENCE_SECONDS)

    def handle(self, method: str, params: dict) -> dict:
        stalled = self._take_hold(method, before=True)
        if stalled is not None:
            self._wait(stalled)
            if stalled.discard:  # the poster died before its request reached Slack: nothing happened
                return {"ok": False, "error": "request_never_arrived"}
        answer = super().handle(method, params)
        held = self._take_hold(method, before=False)
        if held is not None:
            self._wait(held)
        return answer

    # ── HTTP: response URLs can stall too ───────────────────────────────────────────────────────

    def _handler(self):
        base = super()._handler()
        fake = self

        class StallingHandler(base):
            def _serve(self) -> None:
                if urlsplit(self.path).path.startswith("/response/"):
                    stalled = fake._take_hold("response_url", before=True)
                    if stalled is not None:
                        fake._wait(stalled)
                super()._serve()

        return StallingHandler
