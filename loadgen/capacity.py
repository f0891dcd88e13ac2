"""The server's free connections: may this role open N more right now?

A connection counts against ``max_connections`` while it is a client backend; the last
``superuser_reserved_connections`` (and, on PostgreSQL 16+, ``reserved_connections`` unless the
role has ``pg_use_reserved_connections``) are kept for superusers; a role's ``CONNECTION LIMIT``
and the database's cap their own sessions. ``loadgen stream`` calls ``require_free_connections``
before spawning its workers, and ``seed`` checks its loaders the same way, so a run never
starts only to fail, half-way through its start, on "too many clients".
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from loadgen import db
from loadgen.errors import ConfigError, DatabaseUnavailableError


@dataclass(frozen=True)
class Capacity:
    """What the server allows this role and database, counted from one connection's view."""

    max_connections: int
    reserved: int  # slots this role may not use (superuser / reserved_connections)
    in_use: int  # client backends now, the one that asked included
    role: str
    role_limit: int | None  # CONNECTION LIMIT of the role (None: unlimited)
    role_in_use: int
    database: str
    database_limit: int | None  # CONNECTION LIMIT of the database (None: unlimited)
    database_in_use: int

    def most(self) -> tuple[int, str]:
        """(the most connections this role could ever hold here, what bounds it)."""
        bounds = [
            (
                self.max_connections - self.reserved,
                f"max_connections {self.max_connections} minus {self.reserved} reserved",
            )
        ]
        if self.role_limit is not None:
            bounds.append((self.role_limit, f"role {self.role!r} CONNECTION LIMIT"))
        if self.database_limit is not None:
            bounds.append((self.database_limit, f"database {self.database!r} CONNECTION LIMIT"))
        return min(bounds)

    def free(self) -> tuple[int, str]:
        """(connections this role may hold from now on, why), counting the connection that
        asked as one of them (it closes first, or it is one of the sessions needed)."""
        mine = 1
        bounds = [
            (
                self.max_connections - self.reserved - self.in_use + mine,
                f"max_connections {self.max_connections}, {self.in_use} in use,"
                f" {self.reserved} reserved",
            )
        ]
        if self.role_limit is not None:
            bounds.append(
                (
                    self.role_limit - self.role_in_use + mine,
                    f"role {self.role!r} CONNECTION LIMIT {self.role_limit},"
                    f" {self.role_in_use} in use",
                )
            )
        if self.database_limit is not None:
            bounds.append(
                (
                    self.database_limit - self.database_in_use + mine,
                    f"database {self.database!r} CONNECTION LIMIT {self.database_limit},"
                    f" {self.database_in_use} in use",
                )
            )
        count, why = min(bounds)
        return max(count, 0), why


_QUERY = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true)::int, 0),
       r.rolsuper, r.rolconnlimit, d.datconnlimit,
       count(*) FILTER (WHERE a.backend_type = 'client backend'),
       count(*) FILTER (WHERE a.backend_type = 'client backend' AND a.usesysid = r.oid),
       count(*) FILTER (WHERE a.backend_type = 'client backend' AND a.datid = d.oid),
       current_user, current_database()
FROM pg_roles r, pg_database d, pg_stat_activity a
WHERE r.rolname = current_user AND d.datname = current_database()
GROUP BY r.rolsuper, r.rolconnlimit, d.datconnlimit
"""


def capacity(conn: psycopg.Connection) -> Capacity:
    """Read the limits and the sessions in use (one query; any role may run it)."""
    row = conn.execute(_QUERY).fetchone()
    assert row is not None  # pg_stat_activity always holds this very session
    max_conn, su_reserved, reserved_conn, is_super, role_limit, db_limit = row[:6]
    in_use, role_in_use, db_in_use, role, database = row[6:]
    reserved = 0
    if not is_super:
        reserved = int(su_reserved)
        if reserved_conn and not _may_use_reserved(conn):
            reserved += int(reserved_conn)
    return Capacity(
        max_connections=int(max_conn),
        reserved=reserved,
        in_use=int(in_use),
        role=str(role),
        role_limit=None if is_super or role_limit < 0 else int(role_limit),
        role_in_use=int(role_in_use),
        database=str(database),
        database_limit=None if db_limit < 0 else int(db_limit),
        database_in_use=int(db_in_use),
    )


def _may_use_reserved(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT pg_has_role(current_user, 'pg_use_reserved_connections', 'USAGE')"
    ).fetchone()
    return bool(row and row[0])


def check(cap: Capacity, needed: int, what: str) -> None:
    """Raise unless ``needed`` sessions fit, the asking one included (``what`` names the flag,
    e.g. ``--workers 8``).

    Raises:
        ConfigError: more than this role could ever hold here (exit 2: lower the flag).
        DatabaseUnavailableError: not that many free now (exit 3: others hold them).
    """
    most, bound = cap.most()
    if needed > most:
        raise ConfigError(
            f"{what} needs {needed} connections but the server allows at most {most} ({bound});"
            " lower it"
        )
    free, why = cap.free()
    if needed > free:
        raise DatabaseUnavailableError(
            f"{what} needs {needed} connections but the server has {free} free now ({why});"
            " lower it, or wait for other clients to disconnect"
        )


def require_free_connections(dsn: str, needed: int, what: str, *, retry_for_s: float) -> None:
    """Connect, read the capacity, disconnect; raise as ``check`` unless ``needed`` fit.

    Called by ``loadgen stream`` in the CLI's process before it spawns the workers.
    """
    with db.connect(dsn, autocommit=True, retry_for_s=retry_for_s) as conn:
        cap = capacity(conn)
    check(cap, needed, what)
