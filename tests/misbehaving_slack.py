"""The Slack stand-in of `tests/fakes/slack_api.py`, made stricter and slower on purpose.

- **Stalls**: a request (an API method, a `response_url`, or every request) waits before Slack looks at
  it, until the test releases it — a Slack that hangs.
- **Held answers**: a call is carried out (the message is in the channel) and its answer is held until
  the test releases it — the window in which a worker can die after Slack posted but before it
  recorded the `ts`. **Held and dropped**: the call waits and is never carried out — the worker died
  before its post reached Slack.
- **Block Kit limits as Slack enforces them**: a message or modal beyond them is refused with
  `invalid_blocks` (or `msg_too_long`), as the real API does, instead of being stored.

Every hold reports when it was reached (`Hold.reached`), so that tests act in the window instead of
racing sleeps against it.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tests.fakes.slack_api import FakeSlack

# https://api.slack.com/reference/block-kit/blocks and the chat.postMessage / views.open references.
MESSAGE_TEXT_LIMIT = 40_000
MESSAGE_BLOCKS_LIMIT = 50
MODAL_BLOCKS_LIMIT = 100
SECTION_TEXT_LIMIT = 3000
SECTION_FIELDS_LIMIT = 10
FIELD_TEXT_LIMIT = 2000
HEADER_TEXT_LIMIT = 150
CONTEXT_ELEMENTS_LIMIT = 10
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
ID_LIMIT = 255
PRIVATE_METADATA_LIMIT = 3000
MODAL_TITLE_LIMIT = 24
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


def block_kit_problems(blocks: list, modal: bool = False) -> list[str]:
    """What Slack would refuse in these blocks (empty: Slack accepts them)."""
    problems = []
    limit = MODAL_BLOCKS_LIMIT if modal else MESSAGE_BLOCKS_LIMIT
    if not isinstance(blocks, list):
        return ["blocks is not a list"]
    if len(blocks) > limit:
        problems.append(f"{len(blocks)} blocks > {limit}")
    for block in blocks:
        kind = block.get("type")
        if len(str(block.get("block_id", ""))) > ID_LIMIT:
            problems.append("block_id too long")
        text = (block.get("text") or {}).get("text", "")
        if kind == "section":
            if len(text) > SECTION_TEXT_LIMIT:
                problems.append(f"section text {len(text)} > {SECTION_TEXT_LIMIT}")
            fields = block.get("fields") or []
            if len(fields) > SECTION_FIELDS_LIMIT:
                problems.append(f"{len(fields)} fields > {SECTION_FIELDS_LIMIT}")
            problems += [f"field {len(f.get('text', ''))} > {FIELD_TEXT_LIMIT}" for f in fields
                         if len(f.get("text", "")) > FIELD_TEXT_LIMIT]
            if not text and not block.get("fields"):
                problems.append("empty section")
        if kind == "header" and len(text) > HEADER_TEXT_LIMIT:
            problems.append(f"header {len(text)} > {HEADER_TEXT_LIMIT}")
        if kind == "context":
            elements = block.get("elements") or []
            if len(elements) > CONTEXT_ELEMENTS_LIMIT:
                problems.append("too many context elements")
            problems += [f"context text {len(e.get('text', ''))} > {SECTION_TEXT_LIMIT}" for e in elements
                         if len(e.get("text", "")) > SECTION_TEXT_LIMIT]
        for element in block.get("elements") or []:
            if element.get("type") == "button":
                if len((element.get("text") or {}).get("text", "")) > BUTTON_TEXT_LIMIT:
                    problems.append("button text too long")
                if len(str(element.get("value", ""))) > BUTTON_VALUE_LIMIT:
                    problems.append("button value too long")
            if len(str(element.get("action_id", ""))) > ID_LIMIT:
                problems.append("action_id too long")
    return problems


class MisbehavingSlack(FakeSlack):
    def __init__(self, *args, **kwargs):
        self.holds: list[Hold] = []
        self.refused: list[tuple[str, list[str]]] = []  # (method, problems) of calls refused for Block Kit
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
        problems = self._problems(method, params)
        if problems:
            with self._lock:
                self.refused.append((method, problems))
            error = "msg_too_long" if any("text" == p for p in problems) else "invalid_blocks"
            return {"ok": False, "error": error, "response_metadata": {"messages": problems[:5]}}
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

    @staticmethod
    def _problems(method: str, params: dict) -> list[str]:
        if method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
            problems = block_kit_problems(params.get("blocks") or [])
            if len(str(params.get("text") or "")) > MESSAGE_TEXT_LIMIT:
                problems.append("text")
            return problems
        if method in ("views.open", "views.update", "views.push"):
            view = params.get("view") or {}
            problems = block_kit_problems(view.get("blocks") or [], modal=True)
            if len(str(view.get("private_metadata") or "")) > PRIVATE_METADATA_LIMIT:
                problems.append("private_metadata too long")
            if len(((view.get("title") or {}).get("text") or "")) > MODAL_TITLE_LIMIT:
                problems.append("title too long")
            return problems
        return []

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

    def response_problems(self) -> list[tuple[str, list[str]]]:
        """Block Kit problems in what was sent to response URLs (Slack would show nothing for them)."""
        with self._lock:
            bodies = list(self.responses)
        out = []
        for name, body in bodies:
            blocks = body.get("blocks")
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
            problems = block_kit_problems(blocks or [])
            if problems:
                out.append((name, problems))
        return out
