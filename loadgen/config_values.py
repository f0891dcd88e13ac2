"""What a setting's value means: its type, its range or choices, and the typed value its text
parses into (a DSN, a RATE, a DURATION, a MIX, a slot or publication name).

Used by ``loadgen.config.load`` only, once per command, in the CLI's process; each function
raises ``ConfigError`` naming the flag, or the source and the key.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loadgen import limits
from loadgen.dsn import parse_dsn
from loadgen.errors import ConfigError


@dataclass(frozen=True)
class Rate:
    """A parsed RATE: operations per second for the whole run, all workers together."""

    text: str  # as given, e.g. "200/min"
    per_s: float | None  # None = unlimited (no schedule: as fast as the server goes)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Mix:
    """A parsed MIX: a weight for every registered operation (``loadgen.ops.mix``)."""

    text: str  # as given, e.g. "insert=70,update=30"
    weights: Mapping[str, float]  # operation name -> relative weight, registry order

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Phases:
    """Parsed load phases (``--phases`` text or ``[[stream.phase]]`` tables)."""

    text: str  # as given (the tables rendered as DURATION@RATE items)
    plan: Any  # loadgen.stream.phases.PhasePlan (imported only when phases are given)

    def __str__(self) -> str:
        return self.text


CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("seed", "method"): ("copy", "insert"),
    ("stream", "arrivals"): ("token-bucket", "poisson", "uniform"),
    ("logging", "level"): ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    ("logging", "rotate_when"): ("S", "M", "H", "D", "MIDNIGHT", *(f"W{d}" for d in range(7))),
    ("cdc", "replica_identity"): ("default", "full"),
}
_UPPERCASE_CHOICES = {("logging", "level"), ("logging", "rotate_when")}


def _parse_dsn(value: Any, label: str) -> str:
    parse_dsn(str(value), label)
    return str(value)


def _parse_rate(value: Any, label: str) -> Rate:
    from loadgen.stream.rates import parse_rate

    text = str(value)
    return Rate(text=text, per_s=parse_rate(text, flag=label))


def _parse_duration(value: Any, label: str) -> float:
    from loadgen.stream.rates import parse_duration

    if isinstance(value, bool):
        raise ConfigError(f"{label} = {value!r} is not a duration")
    return parse_duration(value, flag=label)


def _parse_mix(value: Any, label: str) -> Mix:
    from loadgen.ops.mix import parse_mix

    text = str(value)
    return Mix(text=text, weights=parse_mix(text, label=label))


def _parse_phases(value: Any, label: str) -> Phases:
    """``--phases`` text or a ``[[stream.phase]]`` list of tables -> ``PhasePlan``."""
    from loadgen.stream import phases

    if isinstance(value, str):
        plan = phases.parse_phases(value, flag=label)
        return Phases(text=str(plan), plan=plan)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{label}: expected [[stream.phase]] tables or text like 60s@100/s")
    items = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict):
            raise ConfigError(f"{label} #{i + 1}: expected a table (duration, rate, mix)")
        items.append(phases.phase_from_table(raw, f"{label} #{i + 1}"))
    plan = phases.check_plan(items, label)
    return Phases(text=str(plan), plan=plan)


def _parse_shard(value: Any, label: str) -> Any:
    from loadgen.shards import parse_shard

    return parse_shard(str(value), flag=label)


def _parse_slot(value: Any, label: str) -> str:
    from loadgen.cdc.names import check_slot

    return check_slot(str(value), label)


def _parse_publication(value: Any, label: str) -> str:
    from loadgen.cdc.names import check_publication

    return check_publication(str(value), label)


# Strings that mean something: parsed once, here, into the field's typed value.
PARSERS: dict[tuple[str, str], Callable[[Any, str], Any]] = {
    ("db", "dsn"): _parse_dsn,
    ("stream", "rate"): _parse_rate,
    ("stream", "duration"): _parse_duration,
    ("stream", "mix"): _parse_mix,
    ("stream", "phase"): _parse_phases,
    ("cdc", "slot"): _parse_slot,
    ("cdc", "debezium_slot"): _parse_slot,
    ("cdc", "publication"): _parse_publication,
    ("shard", "spec"): _parse_shard,
}
# Flags whose name is not "--" + the key (without "_s", "_" as "-").
FLAG_NAMES = {
    ("logging", "level"): "--log-level",
    ("db", "dsn"): "--dsn",
    ("cdc", "debezium_slot"): "--slot",  # `cdc debezium-config --slot`
    ("stream", "phase"): "--phases",
    ("shard", "spec"): "--shard",
}
LIST_KEYS = {("stream", "phase")}  # may be a TOML list of tables (``[[stream.phase]]``)


def base_type(annotation: Any) -> tuple[type, bool]:
    """(the concrete type, whether None is allowed) of a field annotation."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def setting_label(section: str, key: str, sources: Mapping[str, str]) -> str:
    """How to name a setting in a message: the flag when it came from one, else source + key."""
    where = sources.get(f"{section}.{key}", "default")
    if where == "flag":
        return FLAG_NAMES.get((section, key), "--" + key.removesuffix("_s").replace("_", "-"))
    return f"{where}: {section}.{key}"


UNSET = object()  # coerce: the value means "not set" (the default applies)


def coerce(section: str, key: str, annotation: Any, value: Any, sources: Mapping[str, str]) -> Any:
    """Turn a raw value (TOML scalar, env string or flag value) into the field's typed value;
    ``UNSET`` for an empty string from a file or a variable (None when the field allows it).

    Raises:
        ConfigError: the value's problem, naming its flag or its source and key.
    """
    kind, nullable = base_type(annotation)
    label = setting_label(section, key, sources)
    is_flag = sources.get(f"{section}.{key}") == "flag"
    if isinstance(value, str) and not value.strip():
        if is_flag:  # an empty flag is a mistake; leaving the flag out means the default
            raise ConfigError(f"{label}: empty value {value!r}; leave it out for the default")
        return None if nullable else UNSET  # an empty variable or file value: "not set"
    if value is None:
        if nullable:
            return None
        raise ConfigError(f"{label} must not be empty")
    parser = PARSERS.get((section, key))
    if parser is not None and (section, key) in LIST_KEYS and isinstance(value, list):
        return parser(value, label)
    if parser is not None:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{label} = {value!r} must be text")
        return parser(value.strip() if isinstance(value, str) else value, label)
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
            if not math.isfinite(number):
                raise ValueError
            return number
        if kind is str:
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{label} = {value!r} is not a valid {kind.__name__}") from None
    raise ConfigError(f"{label}: unsupported type")  # pragma: no cover


def check(section: str, key: str, value: Any, sources: Mapping[str, str]) -> Any:
    """``value`` normalised (choices' case), or ConfigError when out of range or not a choice."""
    label = setting_label(section, key, sources)
    allowed = CHOICES.get((section, key))
    if allowed is not None:
        normal = str(value).upper() if (section, key) in _UPPERCASE_CHOICES else str(value)
        if normal not in allowed:
            raise ConfigError(f"{label} = {value!r} is not one of {', '.join(allowed)}")
        return normal
    bounds = limits.range_of(section, key)
    if bounds is not None and isinstance(value, int | float) and not isinstance(value, bool):
        problem = bounds.problem(value)
        if problem:
            raise ConfigError(f"{label} = {value!r} {problem}")
    return value


def check_shard(values: Mapping[str, Any], sources: Mapping[str, str]) -> str | None:
    """The problem of a ``[shard]`` section's index and count together, or None.

    ``spec`` (``--shard I/N``, already checked by its parser) wins over ``index``/``count``
    (``JOB_COMPLETION_INDEX`` and ``LOADGEN_SHARDS`` in a Kubernetes Indexed Job).
    """
    from loadgen.shards import shard_problem

    if values.get("spec") is not None:
        return None
    index, count = values.get("index"), values.get("count")
    if index is None and count is None:
        return None
    problem = shard_problem(0 if index is None else index, 1 if count is None else count)
    if problem is None:
        return None
    where = ", ".join(
        setting_label("shard", key, sources) + f" = {values[key]!r}"
        for key in ("index", "count")
        if values.get(key) is not None
    )
    hint = "" if count is not None else " (set LOADGEN_SHARDS to the number of shards)"
    return f"{where}: {problem}{hint}"
