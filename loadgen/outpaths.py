"""Output files a command writes at its end (``--summary-json``, ``--timeseries``): checked,
and their missing parent directories created, before the command does any work.

One rule for every such flag, like ``--ledger``: a missing parent is created; a parent that is
a regular file, a path that is a directory, or a directory no file can be created in is bad
input (ConfigError, exit 2) — refused before a worker starts, not after the run.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from loadgen.errors import ConfigError


def prepare_output_file(flag: str, path: str | Path) -> Path:
    """Make ``path`` writable for ``flag``'s file: create its missing parent directories and
    probe that a file can be created (or appended to) there. Leaves no file behind that was
    not there; an existing file is opened for append only, never truncated.

    Returns:
        ``path`` as a Path.
    Raises:
        ConfigError: one line naming ``flag`` and the path — "is a directory", "X is not a
            directory" (a parent is a file), "cannot create X: <OS error>", "cannot write in X:
            <OS error>" (exit 2).
    """
    target = Path(path)
    label = f"{flag} {str(path)!r}"
    if target.is_dir():
        raise ConfigError(f"{label}: is a directory; give a file path")
    directory = target.parent
    for ancestor in (directory, *directory.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise ConfigError(f"{label}: {ancestor} is not a directory")
            break
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot create {directory}: {exc.strerror or exc}") from None
    _probe(label, target)
    return target


def _probe(label: str, target: Path) -> None:
    """Open ``target`` the way the writer will (created if missing) and undo the creation."""
    existed = target.exists()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        where = target if existed else target.parent
        raise ConfigError(f"{label}: cannot write in {where}: {exc.strerror or exc}") from None
    os.close(fd)
    if not existed:
        with contextlib.suppress(OSError):
            target.unlink()
