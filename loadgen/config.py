"""Settings: frozen dataclasses merged from defaults, config/settings.toml, config/.env, env, flags.

Later layers win: built-in defaults → ``config/settings.toml`` (or ``--config``/``$LOADGEN_CONFIG``)
→ ``config/.env`` → process environment → command-line flags. The original simulator's
variable names keep working (``PG_HOST``, ``STREAM_INTERVAL_SECONDS``, ``SEED_PACIENTES`` ...);
any field can also be set as ``LOADGEN_<SECTION>_<FIELD>``.

Validation happens here, once: every value is coerced to its field's type, checked against its
range (``loadgen.limits``) or choices, and the strings that mean something (a DSN, a RATE, a
DURATION, a MIX) are parsed into typed values, so nothing downstream parses them again. Every
problem found is reported in one ``ConfigError`` (one line), each naming its source and key,
or the flag when it came from one.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loadgen import config_values, tables
from loadgen.config_files import Layer, env_layer, read_env_file, read_toml
from loadgen.config_values import CHOICES, Mix, Phases, Rate, base_type, setting_label
from loadgen.dsn import mask_dsn
from loadgen.errors import ConfigError
from loadgen.shards import Shard

__all__ = [
    "CHOICES",
    "SECTIONS",
    "CdcConfig",
    "DbConfig",
    "LoggingConfig",
    "Mix",
    "Rate",
    "SeedConfig",
    "Settings",
    "ShardConfig",
    "StreamConfig",
    "as_dict",
    "check_stream",
    "display",
    "load",
]

DEFAULT_CONFIG_PATH = Path("config/settings.toml")
DEFAULT_ENV_PATH = Path("config/.env")


@dataclass(frozen=True)
class DbConfig:
    dsn: str | None = None  # full DSN (URI or key=value); wins over the fields below
    host: str | None = None  # PG_HOST; "localhost" when port/user/database are set without it
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
    block_rows: int = 10_000  # rows per COPY write / executemany batch (bounds memory)
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
    rate: Rate | None = None  # "200/min", "50/s", "3/h", "unlimited"; None = original pacing
    arrivals: str = "token-bucket"  # token-bucket | poisson | uniform (under a finite rate)
    burst: int | None = None  # token-bucket capacity in operations (None = engine default)
    duration: float | None = None  # seconds, given as 90, 90s, 5m, 1h; None = until Ctrl-C
    max_ops: int | None = None  # stop after exactly this many operations in total
    batch_size: int = 50  # operations per transaction at most (BATCH_SIZE)
    mix: Mix | None = None  # "insert=70,update=30" or "insert_paciente=20,..."; None = default
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
    # --phases "30s@0-100/s,60s@100/s,30s@0" or [[stream.phase]] tables: rate over time
    phase: Phases | None = None
    timeseries: str | None = None  # --timeseries FILE: one JSON line per report interval
    metrics_port: int | None = None  # --metrics-port N: Prometheus /metrics on this port
    markers_s: float | None = None  # --markers S: a logical message every S s (stream.markers)


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
class ShardConfig:
    """Which shard of a split run this process is (``loadgen.shards``); read by seed, stream."""

    spec: Shard | None = None  # --shard I/N (LOADGEN_SHARD_SPEC); wins over index/count
    index: int | None = None  # JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod index)
    count: int | None = None  # LOADGEN_SHARDS: how many shards the run has

    @property
    def shard(self) -> Shard:
        """The shard: ``spec``, else ``index``/``count`` (0 and 1 when unset)."""
        if self.spec is not None:
            return self.spec
        return Shard(self.index or 0, self.count or 1)


@dataclass(frozen=True)
class Settings:
    db: DbConfig = field(default_factory=DbConfig)
    seed: SeedConfig = field(default_factory=SeedConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cdc: CdcConfig = field(default_factory=CdcConfig)
    shard: ShardConfig = field(default_factory=ShardConfig)
    # where each "section.key" came from: "default", a file path, "env NAME" or "flag"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def is_set(self, section: str, key: str) -> bool:
        """Whether ``section.key`` was given by some layer (not left at its default)."""
        return f"{section}.{key}" in self.sources


SECTIONS: dict[str, type] = {
    "db": DbConfig,
    "seed": SeedConfig,
    "stream": StreamConfig,
    "logging": LoggingConfig,
    "cdc": CdcConfig,
    "shard": ShardConfig,
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
    "JOB_COMPLETION_INDEX": ("shard", "index"),  # set by a Kubernetes Indexed Job
    "LOADGEN_SHARDS": ("shard", "count"),
    **{t.seed_env: ("seed", t.name) for t in tables.TABLES if not t.is_lookup},
}


def _field_types(section: str) -> dict[str, Any]:
    return typing.get_type_hints(SECTIONS[section])


def _blank_means_unset(section: str, key: str, raw: Any) -> bool:
    """An empty file or variable value of a field that cannot be None: a lower layer wins."""
    nullable = base_type(_field_types(section)[key])[1]
    return isinstance(raw, str) and not raw.strip() and not nullable


def _merge(values: Layer, layer: Layer) -> None:
    """Put ``layer`` over ``values``, but a blank value of a field that cannot be None."""
    for (section, key), (raw, where) in layer.items():
        if not _blank_means_unset(section, key, raw):
            values[(section, key)] = (raw, where)


def load(
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every layer into validated, typed ``Settings``.

    Args:
        overrides: ``{section: {field: value}}`` from flags the user actually passed (None
            values are ignored, so unset flags never hide lower layers; ``""`` is bad input).
        config_path: an explicit TOML file; it must exist. Default: ``$LOADGEN_CONFIG``, else
            ``config/settings.toml`` when present.
        env: the environment to read (default ``os.environ``); ``config/.env`` sits under it.

    Raises:
        ConfigError: every problem found, on one line separated by "; ", each naming the flag,
            or the source and the key.
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
        for section, body in read_toml(path).items():
            if not isinstance(body, dict):
                problems.append(
                    f"{path}: top-level key {section!r} must sit in a section "
                    f"([{'], ['.join(SECTIONS)}])"
                )
            elif section not in SECTIONS:
                problems.append(
                    f"{path}: unknown section [{section}] (allowed: {', '.join(SECTIONS)})"
                )
            else:
                known = _field_types(section)
                for key, value in body.items():
                    if key in known:
                        values[(section, key)] = (value, str(path))
                    else:
                        problems.append(
                            f"{path}: unknown key {section}.{key} "
                            f"(allowed: {', '.join(sorted(known))})"
                        )

    known_keys = {section: set(_field_types(section)) for section in SECTIONS}
    if DEFAULT_ENV_PATH.exists():
        dotenv = read_env_file(DEFAULT_ENV_PATH)
        _merge(values, env_layer(dotenv, str(DEFAULT_ENV_PATH), known_keys, LEGACY_ENV, problems))
    _merge(values, env_layer(env, "env", known_keys, LEGACY_ENV, problems))
    for section, body in (overrides or {}).items():
        known = _field_types(section)
        for key, value in body.items():
            if value is None:
                continue
            if key not in known:  # a programming error in a command, not user input
                raise KeyError(f"{section}.{key}")
            values[(section, key)] = (value, "flag")

    built: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    sources = {f"{section}.{key}": where for (section, key), (_, where) in values.items()}
    for (section, key), (raw, _) in values.items():
        try:
            value = config_values.coerce(section, key, _field_types(section)[key], raw, sources)
            if value is config_values.UNSET:
                del sources[f"{section}.{key}"]
                continue
            built[section][key] = (
                None if value is None else config_values.check(section, key, value, sources)
            )
        except ConfigError as exc:
            problems.append(str(exc))
    if not problems:
        shard_problem = config_values.check_shard(built["shard"], sources)
        if shard_problem:
            problems.append(shard_problem)
    if problems:
        raise ConfigError("; ".join(problems))
    sections = {name: SECTIONS[name](**built[name]) for name in SECTIONS}
    return Settings(**sections, sources=sources)


def check_stream(settings: Settings) -> None:
    """The ``[stream]`` values that only make sense together (checked by ``loadgen stream``).

    ``arrivals`` and ``burst`` shape the schedule of a finite RATE; given without one (no rate:
    the original pace; ``unlimited``: no schedule) they would be silently ignored.

    Raises:
        ConfigError: naming the flag or the source and key (exit 2).
    """
    stream, sources = settings.stream, settings.sources
    has_schedule = stream.rate is not None and stream.rate.per_s is not None
    if settings.is_set("stream", "arrivals") and not has_schedule:
        raise ConfigError(
            f"{setting_label('stream', 'arrivals', sources)} = {stream.arrivals!r} needs a finite"
            " --rate (e.g. --rate 100/s); without --rate the original pace applies, and"
            " unlimited has no schedule"
        )
    if stream.phase is not None:
        for key in ("rate", "duration", "arrivals"):
            if settings.is_set("stream", key):
                raise ConfigError(
                    f"{setting_label('stream', key, sources)} cannot go with"
                    f" {setting_label('stream', 'phase', sources)}: the phases set the rate"
                    " and the duration (a token bucket through them)"
                )
        has_schedule = True
    if settings.is_set("stream", "burst") and not (
        has_schedule and stream.arrivals == "token-bucket"
    ):
        raise ConfigError(
            f"{setting_label('stream', 'burst', sources)} = {stream.burst!r} sizes the token"
            " bucket: it needs a finite --rate with --arrivals token-bucket"
        )


def display(value: Any) -> Any:
    """A setting's value for people and JSON: typed values (Rate, Mix) as the text given."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def as_dict(settings: Settings) -> dict[str, dict[str, Any]]:
    """The settings as ``{section: {field: value}}`` with the password masked."""
    out: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        section = getattr(settings, name)
        body = {f.name: display(getattr(section, f.name)) for f in fields(section)}
        if name == "db":
            if body.get("password"):
                body["password"] = "***"
            if body.get("dsn"):
                body["dsn"] = mask_dsn(body["dsn"])
        out[name] = body
    return out
