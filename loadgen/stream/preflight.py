"""What a stream run checks before it spawns a worker: the ledger's directory, the database.

Coordinator's process, before any worker exists; each failure is one line with its exit code.
"""

from __future__ import annotations

import os
from pathlib import Path

from loadgen import db
from loadgen.errors import ConfigError, SchemaMissingError


def check_ledger_path(path: str, num_workers: int = 1, run_id: str = "") -> None:
    """Fail before spawning when the ledger's directory cannot be created or written, or a
    part file a worker will append to exists as something else than a writable file.

    Creates the directory (the workers would); writes nothing in it.

    Raises:
        ConfigError: naming ``--ledger``, the path and the OS error (exit 2).
    """
    from loadgen.ledger import part_path

    for worker_id in range(num_workers):
        part = Path(part_path(path, worker_id, run_id))
        if part.exists() and not part.is_file():
            raise ConfigError(f"--ledger {path!r}: {part} exists and is not a regular file")
        if part.is_file() and not os.access(part, os.W_OK):
            raise ConfigError(f"--ledger {path!r}: {part} is not writable")

    directory = Path(part_path(path, 0)).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--ledger {path!r}: cannot create {directory}: {exc.strerror or exc}"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(f"--ledger {path!r}: directory {directory} is not writable")


def check_database(dsn: str, *, retry_for_s: float = db.DEFAULT_RETRY_FOR_S) -> None:
    """Fail fast before spawning: server reachable, tables present with every column the
    workload writes, and seeded.

    Raises:
        DatabaseUnavailableError: no server after ``retry_for_s`` s of retries (exit 3).
        SchemaMissingError: tables missing or empty, with "run `loadgen init` and
            `loadgen seed` first" (exit 3).
    """
    with db.connect(dsn, autocommit=True, retry_for_s=retry_for_s) as conn:
        try:
            db.require_schema(conn, need_rows=True, need_columns=True)
        except SchemaMissingError as exc:
            text = str(exc)
            if "loadgen init" not in text:
                text = text.split(";")[0] + "; run `loadgen init` and `loadgen seed` first"
            raise SchemaMissingError(text) from None
