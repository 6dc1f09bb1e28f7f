"""What every containment action shares: its confirmation, its outcome and the history lines it writes."""

from __future__ import annotations

from dataclasses import dataclass

DONE, ALREADY, FAILED = "done", "already", "failed"

# Slack's confirmation dialog: title at most 100 characters, text 300, the buttons 30 each.
TITLE_LIMIT, TEXT_LIMIT, BUTTON_LIMIT = 100, 300, 30


@dataclass(frozen=True)
class Confirmation:
    """What the confirmation dialog says will change, in plain text (values as IAM will see them)."""

    title: str
    text: str
    confirm: str

    def __post_init__(self) -> None:
        if len(self.title) > TITLE_LIMIT or len(self.text) > TEXT_LIMIT or len(self.confirm) > BUTTON_LIMIT:
            raise ValueError("a confirmation must fit Slack's dialog; shorten it where it is written")


@dataclass(frozen=True)
class Outcome:
    """What one attempt achieved: `done`, `already` (nothing needed doing) or `failed`, in one plain
    sentence or a few (values unescaped: whoever shows it escapes it)."""

    kind: str
    detail: str


@dataclass(frozen=True)
class HistoryActions:
    """The signal's history action of each outcome, e.g. "access key deactivated"."""

    done: str
    already: str
    failed: str

    def of(self, outcome: Outcome) -> str:
        return {DONE: self.done, ALREADY: self.already, FAILED: self.failed}[outcome.kind]

    def __iter__(self):
        return iter((self.done, self.already, self.failed))
