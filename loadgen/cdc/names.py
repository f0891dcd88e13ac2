"""Slot and publication names checked up front, and database errors turned into one line.

PostgreSQL's rule for replication slot names (``ReplicationSlotValidateName``): lowercase
letters, digits and underscore, at most 63 characters. Publications are identifiers; loadgen
(and the Debezium config it prints) wants plain ones: a letter or underscore, then letters,
digits, underscore or ``$``, at most 63 bytes (longer names are silently truncated).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from loadgen.errors import ConfigError, DatabaseUnavailableError

MAX_NAME_BYTES = 63  # NAMEDATALEN - 1
_SLOT_RE = re.compile(r"[a-z0-9_]+")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def check_slot(name: str, flag: str = "--slot") -> str:
    """Return ``name`` when it is a valid replication slot name.

    Raises:
        ConfigError: naming ``flag``, the value and the rule.
    """
    if not _SLOT_RE.fullmatch(name) or len(name) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{flag} {name!r}: a slot name is lowercase letters, digits and"
            f" underscore, at most {MAX_NAME_BYTES} characters"
        )
    return name


def check_publication(name: str, flag: str = "--publication") -> str:
    """Return ``name`` when it is a plain identifier of at most 63 bytes.

    Raises:
        ConfigError: naming ``flag``, the value and the rule.
    """
    if not _IDENT_RE.fullmatch(name) or len(name.encode()) > MAX_NAME_BYTES:
        raise ConfigError(
            f"{flag} {name!r}: a publication name is a letter or underscore,"
            f" then letters, digits, underscore or $, at most {MAX_NAME_BYTES}"
            " bytes"
        )
    return name


@contextmanager
def database_errors(command: str) -> Iterator[None]:
    """Turn a psycopg error escaping ``command`` into a one-line DatabaseUnavailableError (exit 3).

    LoadgenErrors pass through unchanged.
    """
    try:
        yield
    except psycopg.Error as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        state = f" (SQLSTATE {exc.sqlstate})" if getattr(exc, "sqlstate", None) else ""
        raise DatabaseUnavailableError(f"{command}: the server refused: {first}{state}") from exc
