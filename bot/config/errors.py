"""The one error every command reports the same way: a setting that stops start-up."""

from __future__ import annotations


class SettingsError(SystemExit):
    """One clear line, then exit status 2."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message
