"""Settings: frozen dataclasses merged from defaults, config/settings.toml, config/.env, env, flags.

Later layers win: built-in defaults → ``config/settings.toml`` (or ``--config``/``$LOADGEN_CONFIG``)
→ ``config/.env`` → process environment → command-line flags. The original simulator's
variable names keep working (``PG_HOST``, ``STREAM_INTERVAL_SECONDS``, ``SEED_PACIENTES`` ...);
any field can also be set as ``LOADGEN_<SECTION>_<FIELD>``. Validation happens here, once,
and reports every problem in one ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import tables
from loadgen.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/settings.toml")
DEFAULT_ENV_PATH = Path("config/.env")


@dataclass(frozen=True)
class DbConfig:
    dsn: str | None = None  # full DSN (URI or key=value); wins over the fields below
    host: str | None = None  # PG_HOST
    port: int = 5432  # PG_PORT
    user: str | None = None  # PG_USER
    password: str | None = None  # PG_PASSWORD (never logged)
    database: str = tables.DEFAULT_DATABASE  # PG_DATABASE
    connect_retry_s: float = 30.0  # how long to retry an unreachable server, seconds
    embedded_dir: str = ".loadgen"  # where the embedded server keeps its data (LOADGEN_HOME)


@dataclass(frozen=True)
class SeedConfig:
    scale: float = 1.0  # multiplies every table's seed count but the lookups
    workers: int = 2  # COPY worker processes
    seed: int | None = None  # RNG seed; None draws one (and prints it)
    method: str = "copy"  # "copy" (COPY FROM STDIN) or "insert" (batched executemany)
    chunk_rows: int = 10_000  # rows per generated chunk (bounds memory)
    append: bool = False  # allow seeding tables that already hold rows
    pacientes: int = tables.PACIENTES.seed_rows  # rows at scale 1 (SEED_PACIENTES)
    medicos: int = tables.MEDICOS.seed_rows  # SEED_MEDICOS
    pacientes_convenios: int = tables.PACIENTES_CONVENIOS.seed_rows  # SEED_PACIENTES_CONVENIOS
    consultas: int = tables.CONSULTAS.seed_rows  # SEED_CONSULTAS
    exames: int = tables.EXAMES.seed_rows  # SEED_EXAMES
    internacoes: int = tables.INTERNACOES.seed_rows  # SEED_INTERNACOES


@dataclass(frozen=True)
class StreamConfig:
    workers: int = 2  # worker processes
    rate: str | None = None  # "200/min", "50/s", "3/h", "unlimited"; None = original pacing
    arrivals: str = "token-bucket"  # token-bucket | poisson | uniform
    burst: int | None = None  # token-bucket capacity in operations (None = engine default)
    duration: str | None = None  # "90", "90s", "5m", "1h"; None = until Ctrl-C / max_ops
    max_ops: int | None = None  # stop after exactly this many operations in total
    batch_size: int = 50  # operations per transaction at most (BATCH_SIZE)
    mix: str | None = None  # "insert=70,update=30" or "insert_paciente=20,..."
    seed: int | None = None  # RNG seed
    report_interval_s: float = 1.0  # seconds between worker stats deltas and progress lines
    interval_s: float = 2.0  # pace without --rate: s between batches (STREAM_INTERVAL_SECONDS)
    max_jitter_ms: int = 400  # pace without --rate: random extra delay, ms (MAX_JITTER_MS)
    fail_fast_on_critical: bool = False  # stop the run on the first non-retryable SQL error
    ledger: str | None = None  # ledger directory or prefix
    summary_json: str | None = None  # write the summary as JSON here
    progress: bool | None = None  # None = live progress only on a terminal
    profile: str = "default"  # default | cdc-edge (loadgen.stream.profiles.PROFILES)
    scenarios: str | None = None  # cdc-edge: "all" or "pk-update,truncate"; None = profile's
    scenario_weight: float | None = None  # fraction of ops that are scenario steps (0 < w <= 1)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"  # LOG_LEVEL
    file: str | None = "logs/app.log"  # None or "" disables the log file
    rotate_when: str = "midnight"  # TimedRotatingFileHandler ``when``
    backup_count: int = 7  # rotated files kept


@dataclass(frozen=True)
class CdcConfig:
    publication: str = "loadgen_pub"  # publication for the 7 tables
    slot: str = "loadgen_verify"  # the verifier's own pgoutput slot
    debezium_slot: str = "loadgen_debezium"  # Debezium's slot (never the verifier's)
    replica_identity: str = "default"  # default | full
    topic_prefix: str = "hospital"  # Debezium topic.prefix


@dataclass(frozen=True)
class Settings:
    db: DbConfig = field(default_factory=DbConfig)
    seed: SeedConfig = field(default_factory=SeedConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cdc: CdcConfig = field(default_factory=CdcConfig)
    # where each "section.key" came from: "default", a file path, "env NAME" or "flag"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


SECTIONS: dict[str, type] = {
    "db": DbConfig,
    "seed": SeedConfig,
    "stream": StreamConfig,
    "logging": LoggingConfig,
    "cdc": CdcConfig,
}

# The original simulator's environment names → (section, field).
LEGACY_ENV: dict[str, tuple[str, str]] = {
    "PG_HOST": ("db", "host"),
    "PG_PORT": ("db", "port"),
    "PG_USER": ("db", "user"),
    "PG_PASSWORD": ("db", "password"),
    "PG_DATABASE": ("db", "database"),
    "LOADGEN_DSN": ("db", "dsn"),
    "DATABASE_URL": ("db", "dsn"),
    "LOADGEN_HOME": ("db", "embedded_dir"),
    "STREAM_INTERVAL_SECONDS": ("stream", "interval_s"),
    "BATCH_SIZE": ("stream", "batch_size"),
    "MAX_JITTER_MS": ("stream", "max_jitter_ms"),
    "LOG_LEVEL": ("logging", "level"),
    **{t.seed_env: ("seed", t.name) for t in tables.TABLES if not t.is_lookup},
}

_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("seed", "method"): ("copy", "insert"),
    ("stream", "arrivals"): ("token-bucket", "poisson", "uniform"),
    ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    ("cdc", "replica_identity"): ("default", "full"),
}
_POSITIVE: set[tuple[str, str]] = {
    ("seed", "workers"),
    ("seed", "chunk_rows"),
    ("stream", "workers"),
    ("stream", "batch_size"),
    ("stream", "report_interval_s"),
    ("stream", "burst"),
    ("stream", "max_ops"),
    ("seed", "scale"),
    ("stream", "scenario_weight"),
}
_NON_NEGATIVE: set[tuple[str, str]] = {
    ("db", "connect_retry_s"),
    ("stream", "interval_s"),
    ("stream", "max_jitter_ms"),
    ("logging", "backup_count"),
    ("db", "port"),
    ("seed", "seed"),
    ("stream", "seed"),
    *{("seed", t.name) for t in tables.TABLES if not t.is_lookup},
}


def _field_types(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(the concrete type, whether None is allowed) of a field annotation."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _coerce(section: str, key: str, value: Any, where: str) -> Any:
    """Convert a raw value (TOML scalar or env string) to the field's type."""
    kind, nullable = _base_type(_field_types(section)[key])
    label = f"{where}: {section}.{key}"
    if value is None or (isinstance(value, str) and value.strip() == "" and nullable):
        if nullable:
            return None
        raise ConfigError(f"{label} must not be empty")
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(str(value).strip()) if isinstance(value, str) else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError
            return number
        if kind is str:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{label} = {value!r} is not a valid {kind.__name__}") from None
    raise ConfigError(f"{label}: unsupported type")  # pragma: no cover


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML (UTF-8): {exc}") from None


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=VALUE`` file (comments, blank lines, ``export`` and quotes allowed)."""
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


def _env_layer(
    env: Mapping[str, str], where: str, problems: list[str]
) -> dict[tuple[str, str], tuple[Any, str]]:
    """Settings named by environment variables; ``LOADGEN_<SECTION>_<typo>`` is a problem."""
    layer: dict[tuple[str, str], tuple[Any, str]] = {}
    for name, value in env.items():
        target = LEGACY_ENV.get(name)
        if target is None and name.startswith("LOADGEN_"):
            rest = name[len("LOADGEN_") :].lower()
            for section in SECTIONS:
                prefix = section + "_"
                if not rest.startswith(prefix):
                    continue
                if rest[len(prefix) :] in _field_types(section):
                    target = (section, rest[len(prefix) :])
                else:
                    problems.append(
                        f"{where} {name}: unknown setting {section}."
                        f"{rest[len(prefix) :]} (allowed: "
                        f"{', '.join(sorted(_field_types(section)))})"
                    )
                break
        if target is not None:
            layer[target] = (value, f"{where} {name}")
    return layer


def load(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every layer into validated ``Settings``.

    Args:
        overrides: ``{section: {field: value}}`` from flags the user actually passed (None
            values are ignored, so unset flags never hide lower layers).
        config_path: an explicit TOML file; it must exist. Default: ``$LOADGEN_CONFIG``, else
            ``config/settings.toml`` when present.
        env: the environment to read (default ``os.environ``); ``config/.env`` sits under it.

    Raises:
        ConfigError: every problem found, one per line, each naming the source and the key.
    """
    env = dict(os.environ if env is None else env)
    values: dict[tuple[str, str], tuple[Any, str]] = {}
    problems: list[str] = []

    path = (
        Path(config_path)
        if config_path
        else (Path(env["LOADGEN_CONFIG"]) if env.get("LOADGEN_CONFIG") else None)
    )
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        document = _read_toml(path)
        for section, body in document.items():
            if not isinstance(body, dict):
                problems.append(
                    f"{path}: top-level key {section!r} must sit in a section "
                    f"([{'], ['.join(SECTIONS)}])"
                )
                continue
            if section not in SECTIONS:
                problems.append(
                    f"{path}: unknown section [{section}] (allowed: {', '.join(SECTIONS)})"
                )
                continue
            if not isinstance(body, dict):
                problems.append(f"{path}: [{section}] must be a table")
                continue
            known = _field_types(section)
            for key, value in body.items():
                if key not in known:
                    problems.append(
                        f"{path}: unknown key {section}.{key} (allowed: {', '.join(sorted(known))})"
                    )
                else:
                    values[(section, key)] = (value, str(path))

    if DEFAULT_ENV_PATH.exists():
        values.update(_env_layer(read_env_file(DEFAULT_ENV_PATH), str(DEFAULT_ENV_PATH), problems))
    values.update(_env_layer(env, "env", problems))
    for section, body in (overrides or {}).items():
        known = _field_types(section)
        for key, value in body.items():
            if value is None:
                continue
            if key not in known:  # a programming error in a command, not user input
                raise KeyError(f"{section}.{key}")
            values[(section, key)] = (value, "flag")

    built: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    sources: dict[str, str] = {}
    for (section, key), (raw, where) in values.items():
        try:
            built[section][key] = _coerce(section, key, raw, where)
            sources[f"{section}.{key}"] = where
        except ConfigError as exc:
            problems.append(str(exc))
    problems.extend(_validate(built, sources))
    if problems:
        raise ConfigError("; ".join(problems))
    sections = {name: SECTIONS[name](**built[name]) for name in SECTIONS}
    return Settings(**sections, sources=sources)


_FLAG_NAMES = {("logging", "level"): "--log-level", ("db", "dsn"): "--dsn"}


def _label(section: str, key: str, sources: Mapping[str, str]) -> str:
    """How to name a setting in a message: the flag when it came from one, else source + key."""
    where = sources.get(f"{section}.{key}", "default")
    if where == "flag":
        return _FLAG_NAMES.get((section, key), "--" + key.removesuffix("_s").replace("_", "-"))
    return f"{where}: {section}.{key}"


def _validate(built: dict[str, dict[str, Any]], sources: Mapping[str, str]) -> list[str]:
    problems: list[str] = []
    for (section, key), allowed in _CHOICES.items():
        value = built[section].get(key)
        if value is None:
            continue
        if section == "logging":
            value = built[section][key] = str(value).upper()
        if value not in allowed:
            problems.append(
                f"{_label(section, key, sources)} = {value!r} is not one of {', '.join(allowed)}"
            )
    for section, key in _POSITIVE:
        value = built[section].get(key)
        if value is not None and value <= 0:
            problems.append(f"{_label(section, key, sources)} = {value!r} must be greater than 0")
    for section, key in _NON_NEGATIVE:
        value = built[section].get(key)
        if value is not None and value < 0:
            problems.append(f"{_label(section, key, sources)} = {value!r} must not be negative")
    problems.extend(_validate_stream_strings(built["stream"], sources))
    return problems


def _validate_stream_strings(stream: dict[str, Any], sources: Mapping[str, str]) -> list[str]:
    """Rate, duration and mix strings parse (the parsers live with the engine and the ops)."""
    from loadgen.ops.mix import parse_mix
    from loadgen.stream.rates import parse_duration, parse_rate

    problems: list[str] = []
    checks = (
        ("rate", lambda v, label: parse_rate(v, flag=label)),
        ("duration", lambda v, label: parse_duration(v, flag=label)),
        ("mix", lambda v, label: parse_mix(v)),
    )
    for key, parse in checks:
        value = stream.get(key)
        if value is None:
            continue
        label = _label("stream", key, sources)
        try:
            parse(value, label)
        except ConfigError as exc:
            text = str(exc)
            flag = f"--{key}: "
            problems.append(
                text if text.startswith(label) else f"{label}: {text.removeprefix(flag)}"
            )
    return problems


def as_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings as ``{section: {field: value}}`` with the password masked."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        body = dataclasses.asdict(getattr(settings, name))
        if name == "db":
            from loadgen.db import mask_dsn

            if body.get("password"):
                body["password"] = "***"
            if body.get("dsn"):
                body["dsn"] = mask_dsn(body["dsn"])
        out[name] = body
    return out
