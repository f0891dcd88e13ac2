"""Where the database comes from: the settings' layers to one DSN (``resolve_dsn``).

Apart from ``loadgen.db`` (connections) so that the connection code does not import the
settings, which import the operations registry, which connects: no import circle. Called by
the CLI's process (``loadgen.cli.app.get_dsn``) once per command.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg.conninfo import make_conninfo

from loadgen.config import DEFAULT_ENV_PATH, DbConfig, Settings

# Settings that say where a server is; any of them without a DSN means a server at
# host (default localhost), never the embedded one. user/password alone are only credentials.
_LOCATION_FIELDS = ("host", "port", "database")
DEFAULT_HOST = "localhost"


def _is_env(source: str) -> bool:
    """The source is the environment or config/.env (they outrank config/settings.toml)."""
    return source.startswith("env ") or source.startswith(f"{DEFAULT_ENV_PATH} ")


def resolve_dsn(settings: Settings, *, start_embedded: bool = True) -> tuple[str, str]:
    """Where the database comes from, first found wins. Returns ``(dsn, source)``.

    ``--dsn`` → ``LOADGEN_DSN``/``DATABASE_URL`` → ``PG_HOST``/``PG_PORT``/``PG_DATABASE``
    (environment or config/.env; ``PG_USER``/``PG_PASSWORD`` join them) → ``config/settings.toml``
    (``[db] dsn``, else host/port/database) → the embedded server (started on demand unless
    ``start_embedded`` is False). A port or database given without a host means ``localhost``.
    ``source`` is a short phrase for people, e.g. "env LOADGEN_DSN", "env PG_PORT (host
    localhost)".

    Raises:
        DatabaseUnavailableError: the embedded server is needed but could not be started.
    """
    db = settings.db
    sources = settings.sources
    dsn_source = sources.get("db.dsn", "")
    if db.dsn and (dsn_source == "flag" or _is_env(dsn_source)):
        return db.dsn, dsn_source
    from_env = [k for k in _LOCATION_FIELDS if _is_env(sources.get(f"db.{k}", ""))]
    if from_env:
        return _dsn_from_fields(db), _fields_source(db, sources, from_env)
    if db.dsn:
        return db.dsn, dsn_source
    from_file = [k for k in _LOCATION_FIELDS if settings.is_set("db", k)]
    if from_file:
        return _dsn_from_fields(db), _fields_source(db, sources, from_file)
    from loadgen import embedded

    if not start_embedded:
        return embedded.url(db.embedded_dir, db.database), "embedded"
    return embedded.start(db.embedded_dir, db.database), "embedded"


def _fields_source(db: DbConfig, sources: Mapping[str, str], given: list[str]) -> str:
    source = sources[f"db.{given[0]}"]
    return source if db.host else f"{source} (host {DEFAULT_HOST})"


def _dsn_from_fields(db: DbConfig) -> str:
    params: dict[str, str] = {
        "host": db.host or DEFAULT_HOST,
        "port": str(db.port),
        "dbname": db.database,
    }
    if db.user:
        params["user"] = db.user
    if db.password:
        params["password"] = db.password
    return make_conninfo("", **params)
