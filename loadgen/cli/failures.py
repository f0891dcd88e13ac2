"""The one place that turns what escapes a command into one line on stderr and an exit code.

0 success · 1 a check or verification failed · 2 bad input · 3 a database, privilege or schema
problem · 4 a run aborted (a worker died, a signal stopped a command other than ``stream``).
Nothing escapes as a traceback: an error nobody expected is one ``internal error`` line (exit
4) and its traceback goes to the log file only. Runs in the CLI's process, main thread.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

import typer

from loadgen import interrupts
from loadgen.errors import EXIT_ABORTED, EXIT_BAD_INPUT, EXIT_DB_UNAVAILABLE, LoadgenError

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer, click installed beside it
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

logger = logging.getLogger("loadgen.cli")
PREFIX = "loadgen: error: "
# OSErrors about a path the user gave (bad input) rather than about the machine (aborted)
_PATH_ERRNOS = {
    errno.ENOENT,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.EROFS,
}


class CommandInterrupted(Exception):
    """Carries an ``Interrupted`` (a KeyboardInterrupt) out of typer, which would otherwise end
    the command silently with 130."""

    def __init__(self, interrupt: KeyboardInterrupt) -> None:
        super().__init__(str(interrupt))
        self.interrupt = interrupt


def say(line: str) -> None:
    """Print one error line to stderr (newlines inside are folded: one line, always)."""
    text = " ".join(line.split())
    print(f"{PREFIX}{text}", file=sys.stderr, flush=True)


def run(invoke: Callable[[], Any]) -> int:
    """Call ``invoke`` (the app in non-standalone mode); return the exit code to end with."""
    try:
        result = invoke()
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except CommandInterrupted as carrier:
        return _interrupted(carrier.interrupt)
    except KeyboardInterrupt as exc:  # while parsing, before any command ran
        return _interrupted(exc)
    except click_exceptions.NoArgsIsHelpError as exc:
        exc.show()
        return int(exc.exit_code)
    except click_exceptions.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "loadgen"
        say(f"{exc.format_message()} (see `{command} --help`)")
        return int(exc.exit_code)
    except click_exceptions.ClickException as exc:
        say(exc.format_message())
        return int(exc.exit_code)
    except typer.Abort:  # a confirmation prompt got Ctrl-D or Ctrl-C
        say("not confirmed; nothing was done")
        return EXIT_BAD_INPUT
    except LoadgenError as exc:
        say(str(exc))
        return exc.exit_code
    except MemoryError:
        say("out of memory; use smaller values (see --help for each value's range)")
        return EXIT_ABORTED
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # stdout closed early (e.g. `| head`): nothing to say
            return 1
        where = f": {exc.filename}" if exc.filename else ""
        say(f"{exc.strerror or exc}{where}")
        return EXIT_BAD_INPUT if exc.errno in _PATH_ERRNOS else EXIT_ABORTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        # psycopg is imported only by commands that use it: no module, no psycopg error.
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(exc, psycopg.Error):
            from loadgen import db_errors

            say(f"the server refused: {db_errors.describe(exc)}")
            return EXIT_DB_UNAVAILABLE
        _log_to_file_only(exc)
        say(
            f"internal error: {type(exc).__name__}: {mask_dsn(str(exc))} (a bug: the"
            " traceback is in the log file)"
        )
        return EXIT_ABORTED


def _interrupted(exc: KeyboardInterrupt) -> int:
    name = exc.signal_name if isinstance(exc, interrupts.Interrupted) else "SIGINT"
    if isinstance(exc, interrupts.Interrupted) and exc.during_startup:
        say(f"interrupted by {name} while starting; nothing was done")
    else:
        say(f"interrupted by {name} before the command finished")
    return EXIT_ABORTED


def mask_dsn(text: str) -> str:
    """``loadgen.dsn.mask_dsn``, imported when needed (it imports psycopg)."""
    from loadgen.dsn import mask_dsn as mask

    return mask(text)


def _log_to_file_only(exc: BaseException) -> None:
    """The traceback (passwords masked), to the log file handlers; the console gets one line."""
    text = mask_dsn("".join(traceback.format_exception(exc)))
    record = logger.makeRecord(
        logger.name, logging.ERROR, __file__, 0, "internal error\n%s", (text,), None
    )
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
