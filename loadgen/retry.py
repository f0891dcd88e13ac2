"""One retry policy for every connection and transaction, keyed on SQLSTATE.

Every loadgen process asks this module what to do about a psycopg error (``action``) and waits
between attempts with its backoff (``retrying``: tenacity, exponential backoff with full
jitter, never past the caller's deadline). The decision is the error's SQLSTATE:

==============  ==========================================================  =================
action          SQLSTATE                                                    what callers do
==============  ==========================================================  =================
``RECONNECT``   class 08 (connection exception), 57P01/57P02 (the server    reopen the
                shut down or crashed), 57P03 (not accepting connections     connection with
                yet), 53300 (too many connections)                          backoff, retry
``RETRY``       40001 (serialization failure), 40P01 (deadlock)             run the
                                                                            transaction again
``GIVE_UP``     classes 0A, 25, 28, 3D, 3F, 42, 53, 58, F0, XX; 08004 (the  stop: retrying
                server rejected the connection), 08P01 (protocol)           cannot fix it
``SKIP``        anything else (22 data, 23 integrity, 55, 57014, ...)       drop this attempt
==============  ==========================================================  =================

A failed connection attempt carries no SQLSTATE in libpq (psycopg's ``sqlstate`` is None):
``sqlstate`` then names it as the SQL standard does — 08001 when the client could not reach a
server (refused, timed out, no such host), 08004 when the server answered with a FATAL — except
for the server's three "try again later" FATALs, which keep their own codes (57P03, 53300,
57P01). Those three are recognised by the server's message text (the only place libpq puts
them); everything else is decided by code. A connection lost mid-session without a code is
08006 (connection failure).

Pure functions and a factory; any process and thread may call them.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable

import psycopg
import tenacity

logger = logging.getLogger(__name__)


class Action(enum.Enum):
    """What a caller does about a failed attempt (see the module's table)."""

    RECONNECT = "reconnect"
    RETRY = "retry"
    GIVE_UP = "give_up"
    SKIP = "skip"


RETRY_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock
RECONNECT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# classes that mean a privilege, the schema, the server's configuration or a bug: the same
# statement fails again however often it is retried
PERMANENT_CLASSES = frozenset({"0A", "25", "28", "3D", "3F", "42", "53", "58", "F0", "XX"})
PERMANENT_SQLSTATES = frozenset({"08004", "08P01"})

CONNECT_UNREACHABLE = "08001"  # sqlclient_unable_to_establish_sqlconnection
CONNECT_REJECTED = "08004"  # sqlserver_rejected_establishment_of_sqlconnection
CONNECTION_FAILURE = "08006"  # connection_failure: lost without a code

# The server's FATALs worth waiting for, by the message it sends (libpq gives no code at
# connect time). PostgreSQL's own texts, src/backend/{postmaster,utils/init}.
_TRY_LATER_FATALS: tuple[tuple[str, str], ...] = (
    ("the database system is starting up", "57P03"),
    ("the database system is shutting down", "57P03"),
    ("the database system is in recovery mode", "57P03"),
    ("the database system is not yet accepting connections", "57P03"),
    ("the database system is not accepting connections", "57P03"),
    ("sorry, too many clients already", "53300"),
    ("remaining connection slots are reserved", "53300"),
    ("terminating connection due to administrator command", "57P01"),
)

BACKOFF_FIRST_S = 0.25  # the first wait's ceiling; it doubles per attempt
BACKOFF_CAP_S = 5.0  # the longest wait between two attempts


def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a psycopg error, naming connection failures that carry none (above)."""
    code = getattr(exc, "sqlstate", None)
    if code:
        return str(code)
    if not isinstance(exc, psycopg.OperationalError):
        return CONNECTION_FAILURE if isinstance(exc, psycopg.InterfaceError) else "XX000"
    text = str(exc)
    if not text.startswith(("connection failed:", "connection is bad:")):
        return CONNECTION_FAILURE  # lost mid-session ("server closed the connection", ...)
    if "FATAL:" not in text:
        return CONNECT_UNREACHABLE
    for phrase, code in _TRY_LATER_FATALS:
        if phrase in text:
            return code
    return CONNECT_REJECTED


def sqlstate_class(exc: BaseException) -> str:
    """The two-character class of ``sqlstate(exc)`` (``"08"`` for a lost connection)."""
    return sqlstate(exc)[:2]


def action_for(code: str) -> Action:
    """The policy for one SQLSTATE (see the module's table)."""
    if code in RETRY_SQLSTATES:
        return Action.RETRY
    if code in PERMANENT_SQLSTATES:
        return Action.GIVE_UP
    if code in RECONNECT_SQLSTATES or code.startswith("08"):
        return Action.RECONNECT
    if code[:2] in PERMANENT_CLASSES:
        return Action.GIVE_UP
    return Action.SKIP


def action(exc: BaseException, *, is_connection_broken: bool = False) -> Action:
    """What to do about ``exc``. ``is_connection_broken``: the session it failed on is gone
    (psycopg's ``conn.broken``/``closed``), whatever the code says: reconnect."""
    if is_connection_broken:
        return Action.RECONNECT
    return action_for(sqlstate(exc))


def is_permanent(exc: BaseException) -> bool:
    """True when retrying cannot help (``Action.GIVE_UP``)."""
    return action(exc) is Action.GIVE_UP


def can_reconnect(exc: BaseException) -> bool:
    """True for a connection attempt (or a lost session) worth trying again later."""
    return isinstance(exc, psycopg.Error) and action(exc) is Action.RECONNECT


def retrying(
    retry_for_s: float,
    *,
    should_retry: Callable[[BaseException], bool] = can_reconnect,
    sleep: Callable[[float], None] = time.sleep,
    first_s: float = BACKOFF_FIRST_S,
    cap_s: float = BACKOFF_CAP_S,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tenacity.Retrying:
    """A tenacity ``Retrying`` with the policy's backoff: call it with the attempt.

    Attempts run until one succeeds, one fails with an error ``should_retry`` rejects (raised
    at once), or the next attempt would start more than ``retry_for_s`` seconds after the first
    (the last error is raised). Waits are exponential with full jitter, ``U(0, first_s * 2^k)``
    capped at ``cap_s``. ``sleep`` waits (a stream worker passes one that reports and honours
    its stop, raising to abandon); ``on_retry(attempt, error, wait_s)`` is told before each wait.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(state.attempt_number, error, state.upcoming_sleep)

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(should_retry),
        stop=tenacity.stop_before_delay(max(retry_for_s, 0.0)),
        wait=tenacity.wait_random_exponential(multiplier=first_s, max=cap_s),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


__all__ = [
    "Action",
    "PERMANENT_CLASSES",
    "action",
    "action_for",
    "can_reconnect",
    "is_permanent",
    "retrying",
    "sqlstate",
    "sqlstate_class",
]
