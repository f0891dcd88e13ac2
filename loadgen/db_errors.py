"""psycopg errors as one line for people: the server's message, its SQLSTATE, and the fix.

Keyed on SQLSTATE (classes and codes, never message text). Pure; any process may call it (a
seed worker turns its error into a picklable ``DatabaseRefusedError`` with ``refused``).
"""

from __future__ import annotations

import psycopg

from loadgen.dsn import first_line, scrub
from loadgen.errors import DatabaseRefusedError

# SQLSTATE (a full code, or a two-character class) -> what to do about it
_HINTS: dict[str, str] = {
    "42501": "the role lacks a privilege this command needs: grant it (e.g. GRANT INSERT,"
    " UPDATE, DELETE ON ALL TABLES IN SCHEMA ...; DDL needs the schema's owner) or connect as"
    " a role that has it",
    "57014": "the server cancelled the statement, usually its statement_timeout (set for the"
    " database or the role): raise it for loadgen, e.g. ALTER ROLE ... SET statement_timeout ="
    " 0, or add options='-c statement_timeout=0' to the DSN",
    "55P03": "a lock was not granted within lock_timeout: another session holds it; retry"
    " when it is done",
    "25006": "the server only accepts reads (a standby, or default_transaction_read_only):"
    " point loadgen at the primary",
    "42P01": "a table loadgen needs is missing: run `loadgen init`",
    "42703": "a column loadgen needs is missing: `loadgen init` names it",
    "42": "the schema is not what loadgen expects: `loadgen init` checks it",
    "53": "the server is out of a resource (disk, memory or connections)",
    "08": "the connection to the server was lost",
    "57": "the server is shutting down or restarting; retry when it is back",
    "40": "a concurrent transaction conflicted; retry",
}


def hint(sqlstate: str | None) -> str:
    """What to do about an error with this SQLSTATE ("" when there is nothing to add)."""
    if not sqlstate:
        return ""
    return _HINTS.get(sqlstate) or _HINTS.get(sqlstate[:2], "")


def describe(exc: psycopg.Error, dsn: str | None = None) -> str:
    """One line: the server's primary message, ``(SQLSTATE xxxxx)`` and the fix, passwords in
    ``dsn`` scrubbed. E.g. ``permission denied for table pacientes (SQLSTATE 42501); the role
    lacks a privilege ...``."""
    diag = getattr(exc, "diag", None)
    message = (getattr(diag, "message_primary", None) or first_line(exc)).strip()
    if dsn:
        message = scrub(message, dsn)
    state = exc.sqlstate
    text = f"{message} (SQLSTATE {state})" if state else message
    fix = hint(state)
    return f"{text}; {fix}" if fix else text


def refused(exc: psycopg.Error, what: str, dsn: str | None = None) -> DatabaseRefusedError:
    """A ``DatabaseRefusedError`` (exit 3, picklable) saying ``what`` failed and why."""
    return DatabaseRefusedError(f"{what}: {describe(exc, dsn)}")
