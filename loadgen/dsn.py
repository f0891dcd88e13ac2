"""DSN text: parse and validate it once, mask its password, scrub passwords from messages.

Pure (no connection is made); any process may call it. ``loadgen.config`` validates a DSN when
the settings load, so a malformed one is bad input (exit 2) before anything starts.
"""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from loadgen.errors import ConfigError

_URI_PASSWORD = re.compile(r"(://[^:/@?]*:)([^@/?]*)(@)")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&]*)", re.IGNORECASE)
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
MAX_PORT = 65_535


def mask_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***`` (URI or key=value form)."""
    if "://" in dsn:
        masked = _URI_PASSWORD.sub(
            lambda m: m.group(1) + ("***" if m.group(2) else "") + m.group(3), dsn
        )
        return _QUERY_PASSWORD.sub(r"\1***", masked)
    return _KV_PASSWORD.sub(r"\1***", dsn)


def scrub(text: str, dsn: str) -> str:
    """``text`` (e.g. a driver's error message) with every password in ``dsn`` replaced by ***.

    libpq quotes the offending part of a malformed DSN verbatim, password included.
    """
    secrets = [m.group(2) for m in _URI_PASSWORD.finditer(dsn) if m.group(2)]
    secrets += [m.group(2) for m in _QUERY_PASSWORD.finditer(dsn) if m.group(2)]
    secrets += [m.group(2).strip("'") for m in _KV_PASSWORD.finditer(dsn) if m.group(2)]
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return mask_dsn(text)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its class name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_dsn(dsn: str, label: str = "--dsn") -> dict[str, str]:
    """Parse ``dsn`` (URI or key=value) into libpq parameters, checking what libpq would only
    reject when connecting: the port(s) and ``connect_timeout``.

    Args:
        dsn: the DSN as given.
        label: how messages name its source (``--dsn``, ``env LOADGEN_DSN: db.dsn``).

    Raises:
        ConfigError: empty, unparsable, a port outside 1..65535 or a connect_timeout that is
            not a number; the message shows the DSN with its password masked (exit 2).
    """
    where = f"{label}: " if label else ""
    if not dsn.strip():
        raise ConfigError(
            f"{where}empty DSN; leave it out to use LOADGEN_DSN, PG_HOST... or the embedded server"
        )
    invalid = f"{where}invalid DSN {mask_dsn(dsn)!r}"
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"{invalid}: {scrub(first_line(exc), dsn)}") from None
    for port in params.get("port", "").split(","):
        if port.strip() and not (port.strip().isdigit() and 1 <= int(port) <= MAX_PORT):
            raise ConfigError(f"{invalid}: port {port.strip()!r} must be 1..{MAX_PORT}")
    timeout = params.get("connect_timeout")
    if timeout is not None:
        try:
            int(float(timeout))
        except ValueError:
            raise ConfigError(
                f"{invalid}: connect_timeout {timeout!r} is not a number of seconds"
            ) from None
    return params


def database_name(dsn: str) -> str:
    """The database a DSN names (libpq's default: the user name, else ``postgres``)."""
    params = conninfo_to_dict(dsn)
    return str(params.get("dbname") or params.get("user") or "postgres")
