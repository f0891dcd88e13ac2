"""Exception hierarchy and the exit-code table (DESIGN.md is the contract).

Only ``loadgen.cli`` turns these into exit codes; everything else raises.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a check or a CDC verification found a problem
EXIT_BAD_INPUT = 2  # usage, configuration, value out of range
EXIT_DB_UNAVAILABLE = 3  # database unreachable after retries, or schema missing
EXIT_ABORTED = 4  # a run started but was aborted (a worker died)


class LoadgenError(Exception):
    """Base class; ``exit_code`` says how the CLI ends when this escapes a command."""

    exit_code: int = EXIT_CHECK_FAILED


class ConfigError(LoadgenError):
    """Bad input: a flag, a config key or an environment value. Exit 2."""

    exit_code = EXIT_BAD_INPUT


class DatabaseUnavailableError(LoadgenError):
    """The server could not be reached (after retries) or refused us. Exit 3."""

    exit_code = EXIT_DB_UNAVAILABLE


class SchemaMissingError(LoadgenError):
    """The tables a command needs are missing or empty. Exit 3."""

    exit_code = EXIT_DB_UNAVAILABLE


class SeedError(LoadgenError):
    """Seeding could not proceed (e.g. tables already hold data without --append). Exit 2."""

    exit_code = EXIT_BAD_INPUT


class CheckFailedError(LoadgenError):
    """A consistency check or a CDC verification found a problem. Exit 1."""

    exit_code = EXIT_CHECK_FAILED


class RunAbortedError(LoadgenError):
    """A run started but could not finish (a worker died or went silent). Exit 4."""

    exit_code = EXIT_ABORTED


class RuntimeMissingError(LoadgenError):
    """A runtime the command needs is not installed (e.g. Java for ``cdc capture``). Exit 3."""

    exit_code = EXIT_DB_UNAVAILABLE
