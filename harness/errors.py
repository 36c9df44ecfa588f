"""Errors the user can fix. Each names the place and the fix; the CLI prints it and exits 2."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file and line, or a command-line flag."""

    source: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.source
        if self.column is None:
            return f"{self.source}:{self.line}"
        return f"{self.source}:{self.line}:{self.column}"


class HarnessError(Exception):
    """Base class of every error that is the user's to fix (exit code 2, no traceback)."""

    exit_code = 2

    def __init__(self, message: str, *, location: Location | None = None,
                 path: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.location = location
        self.path = path
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        head = ""
        if self.location is not None:
            head = f"{self.location}: "
        if self.path:
            head += f"{self.path}: "
        text = head + self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class SpecError(HarnessError):
    """An invalid spec: bad YAML, unknown key, wrong type, unknown adapter, bad override."""


class SpecWarning(UserWarning):
    """A problem of a spec changed on the command line (``--set``) that does not stop it."""


class SpecErrors(SpecError):
    """Several spec errors found in one pass; all are reported at once."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))

    def render(self) -> str:
        errors = getattr(self, "errors", [])
        return "\n".join(e.render() for e in errors) if errors else self.message


class RegistryError(HarnessError):
    """A plugin problem: a broken entry point, a name two plugins claim, an unknown adapter."""


class ResultsError(HarnessError):
    """A results folder that is missing, corrupt, or does not match the spec."""
