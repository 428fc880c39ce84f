"""The exception types that the CLI turns into a single line on stderr and an exit code."""


class HarError(Exception):
    """A user-facing failure: bad input (exit 2) or a failed check (exit 1 or a domain code >= 3)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadValue(HarError, ValueError):
    """A value that breaks a validation rule (exit 2); also a ValueError, as library callers of a constructor
    that validates its arguments expect."""
