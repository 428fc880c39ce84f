"""Where output goes: results on stdout, messages and progress on stderr; one line per error."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from training.errors import ExitCode, HarError

out = Console()  # data and results
err = Console(stderr=True)  # messages, progress, errors


def fail(message: str, code: ExitCode) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


# Input errors raised by libraries that only some commands import, matched by qualified class name so that this
# module imports none of them: class -> (what the user got wrong, exit code).
LIBRARY_INPUT_ERRORS = {
    "dbus_fast.errors.InvalidAddressError": ("malformed D-Bus address in DBUS_SYSTEM_BUS_ADDRESS", ExitCode.USAGE),
}


def library_input_error(exc: BaseException) -> tuple[str, ExitCode] | None:
    """(one line, exit code) when `exc` is a known library's verdict on the user's input, else None."""
    for cls in type(exc).__mro__:
        known = LIBRARY_INPUT_ERRORS.get(f"{cls.__module__}.{cls.__qualname__}")
        if known is not None:
            return f"{known[0]}: {exc}", known[1]
    return None


def cli_errors(fn: Callable) -> Callable:
    """Turn expected failures into one line on stderr and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HarError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except FileNotFoundError as exc:
            raise fail(f"file not found: {exc.filename}", ExitCode.USAGE) from None
        except PermissionError as exc:
            raise fail(f"permission denied: {exc.filename}", ExitCode.USAGE) from None
        except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
            raise fail(f"{exc.strerror}: {exc.filename}", ExitCode.USAGE) from None
        except KeyboardInterrupt:
            raise fail("interrupted", ExitCode.INTERRUPTED) from None
        except Exception as exc:
            known = library_input_error(exc)
            if known is None:
                raise  # a bug: the traceback is what a report needs
            raise fail(*known) from None

    return wrapper


def print_json(obj: dict) -> None:
    from training.run_dir import to_json

    sys.stdout.write(to_json(obj))
    sys.stdout.flush()


def csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
