"""Reading the configuration layers: a TOML file, a ``KEY=VALUE`` file, environment names.

Pure readers for ``loadgen.config.load`` (which validates what they return): each returns raw
values with where they came from and raises ``ConfigError`` naming the file and line.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Set
from pathlib import Path
from typing import Any

from loadgen.errors import ConfigError

# (section, key) -> (raw value, where it came from: a path, "env NAME", ...)
Layer = dict[tuple[str, str], tuple[Any, str]]


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML document at ``path``.

    Raises:
        ConfigError: unreadable, not UTF-8 or not valid TOML (naming the path).
    """
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML (UTF-8): {exc}") from None


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (comments, blank lines, ``export`` and quotes allowed).

    Raises:
        ConfigError: unreadable, not UTF-8, or a malformed line (naming ``path:line``).
    """
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc}") from None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if value[:1] in ("'", '"'):
            closing = value.find(value[0], 1)
            if closing < 0:
                raise ConfigError(f"{path}:{number}: unterminated quote in {raw.strip()!r}")
            value = value[1:closing]
        else:  # an unquoted value ends at " #" (a trailing comment, as in .env.example)
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        values[key.strip()] = value
    return values


def env_layer(
    env: Mapping[str, str],
    where: str,
    known: Mapping[str, Set[str]],
    legacy: Mapping[str, tuple[str, str]],
    problems: list[str],
) -> Layer:
    """Settings named by environment variables (or a ``.env`` file's keys).

    Args:
        env: name -> value.
        where: the source for messages and ``config show`` ("env", "config/.env").
        known: section -> its keys; ``LOADGEN_<SECTION>_<KEY>`` names them.
        legacy: the original simulator's names (``PG_HOST``...) -> (section, key).
        problems: ``LOADGEN_<SECTION>_<typo>`` is appended here (unknown setting).
    """
    layer: Layer = {}
    for name, value in env.items():
        target = legacy.get(name)
        if target is None and name.startswith("LOADGEN_"):
            rest = name[len("LOADGEN_") :].lower()
            for section, keys in known.items():
                prefix = section + "_"
                if not rest.startswith(prefix):
                    continue
                if rest[len(prefix) :] in keys:
                    target = (section, rest[len(prefix) :])
                else:
                    problems.append(
                        f"{where} {name}: unknown setting {section}.{rest[len(prefix) :]} "
                        f"(allowed: {', '.join(sorted(keys))})"
                    )
                break
        if target is not None:
            layer[target] = (value, f"{where} {name}")
    return layer
