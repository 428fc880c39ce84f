"""The exit codes of every `har` command, and the exception types that the CLI turns into a single line on stderr
and an exit code (docs/run-artifacts.md lists the codes)."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # a failed check or step (a run, a build, the runtimes disagree)
    USAGE = 2  # bad usage or input: an option, a file, a field
    DOMAIN = 3  # the task cannot be done here: the model does not fit the device, TFLM lacks an op, no BLE device
    SSH = 4  # the board is not reachable over SSH or refuses us (host key, login), or a step run there failed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


class HarError(Exception):
    """A user-facing failure: bad input (exit 2) or a failed check (exit 1 or a domain code >= 3)."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class BadValue(HarError, ValueError):
    """A value that breaks a validation rule (exit 2); also a ValueError, as library callers of a constructor
    that validates its arguments expect."""
