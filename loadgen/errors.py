"""Exception hierarchy and the exit-code table (the README's "Exit codes" says the same).

Only ``loadgen.cli`` turns exceptions into exit codes and one line on stderr; everything else
raises. Every class here takes a single message argument, so each pickles across a process
boundary (seed and stream workers send them to the CLI's process).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a check or a CDC verification found a problem
EXIT_BAD_INPUT = 2  # usage, configuration, value out of range
EXIT_DB_UNAVAILABLE = 3  # database unreachable, refused (privileges, timeout), schema missing
EXIT_ABORTED = 4  # a run started but was aborted (a worker died, SIGINT/SIGTERM outside stream)


class LoadgenError(Exception):
    """Base class; ``exit_code`` says how the CLI ends when this escapes a command."""

    exit_code: int = EXIT_CHECK_FAILED


class ConfigError(LoadgenError):
    """Bad input: a flag, a config key or an environment value. Exit 2."""

    exit_code = EXIT_BAD_INPUT


class DatabaseUnavailableError(LoadgenError):
    """The server could not be reached (after retries) or refused us. Exit 3."""

    exit_code = EXIT_DB_UNAVAILABLE


class DatabaseRefusedError(DatabaseUnavailableError):
    """The server refused a statement: a privilege, a timeout, a resource (message has the
    SQLSTATE and the fix). Exit 3."""


class SchemaMissingError(LoadgenError):
    """The tables or columns a command needs are missing, or the tables are empty. Exit 3."""

    exit_code = EXIT_DB_UNAVAILABLE


class SeedError(LoadgenError):
    """Seeding could not proceed (e.g. tables already hold data without --append). Exit 2."""

    exit_code = EXIT_BAD_INPUT


class CheckFailedError(LoadgenError):
    """A consistency check or a CDC verification found a problem. Exit 1."""

    exit_code = EXIT_CHECK_FAILED


class RunAbortedError(LoadgenError):
    """A run started but could not finish (a worker died or went silent, or a signal stopped
    a command that is not ``stream``). Exit 4."""

    exit_code = EXIT_ABORTED


class NoProgressError(RunAbortedError):
    """A stream worker's transactions kept failing with errors retrying cannot fix (a missing
    privilege or column, a read-only server): the run stops instead of spinning. Exit 4."""


class RuntimeMissingError(LoadgenError):
    """A runtime the command needs is not installed (e.g. Java for ``cdc capture``). Exit 3."""

    exit_code = EXIT_DB_UNAVAILABLE
