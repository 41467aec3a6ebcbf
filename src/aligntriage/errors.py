"""User-facing errors: one line, naming the bad value and the valid choices.

The CLI turns any AligntriageError into a one-line message and exit code 2, so nothing a user mistypes ever
surfaces as a traceback from deep inside JAX.
"""

from __future__ import annotations

from collections.abc import Iterable


class AligntriageError(ValueError):
    """A problem with what the user asked for (a name, a file, a setting), not a bug."""


class UnknownName(AligntriageError):
    """A name that is not among the valid choices of its kind."""

    def __init__(self, kind: str, name: str, choices: Iterable[str], where: str = ""):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        place = f" in {where}" if where else ""
        super().__init__(f"unknown {kind} '{name}'{place}; valid: {', '.join(self.choices)}")
