"""User-facing errors: each names the bad value and, where there is a choice, the valid ones."""

from __future__ import annotations

from collections.abc import Iterable


class UnlearnbenchError(Exception):
    """An error caused by the user's input or environment, shown as one line by the CLI."""


class UnknownChoiceError(UnlearnbenchError):
    """A name that is not among the valid choices (a plugin, a protocol, a --set key...)."""

    def __init__(self, what: str, value: object, choices: Iterable[str]) -> None:
        self.what = what
        self.value = value
        self.choices = sorted(choices)
        listed = ", ".join(self.choices) if self.choices else "(none)"
        super().__init__(f"unknown {what} {value!r}; valid choices: {listed}")


class InvalidValueError(UnlearnbenchError):
    """A value of the wrong type or outside its allowed range."""


class DatasetNotFoundError(UnlearnbenchError):
    """A dataset copy is missing or corrupt where it was looked for."""
