"""Parse ``--mix`` specs into per-operation weights (pure; raises ConfigError)."""

from __future__ import annotations

import math

from loadgen.errors import ConfigError
from loadgen.ops.registry import BY_NAME, KINDS, OPERATIONS

_HINT = (
    "expected comma-separated NAME=WEIGHT items, NAME a kind (insert, update, delete) or an "
    "operation name"
)


def default_mix() -> dict[str, float]:
    """Return the default weights of every registered operation, in registry order."""
    return {op.name: op.default_weight for op in OPERATIONS}


def parse_mix(spec: str | None, *, label: str = "--mix") -> dict[str, float]:
    """Parse a mix spec into a weight for every registered operation.

    Forms (weights are relative, any non-negative finite numbers; both forms may be mixed):

    - ``None`` or ``"default"``: the registry's default weights;
    - by kind, ``insert=70,update=30``: the kind's weight is split over that kind's operations
      that are on by default, in proportion to their default weights (over all of the kind's
      operations equally when none is on by default, e.g. ``delete``);
    - by name, ``insert_paciente=20,update_exame=5``: that operation gets exactly that weight;
    - mixed, ``insert=70,update=30,delete_consulta=5``: named operations get their own weight,
      and a kind's weight is split over that kind's operations not named in the spec.

    Operations the spec does not reach (neither named nor covered by a kind item) get 0.

    Args:
        spec: the ``--mix`` value or ``[stream] mix`` setting.
        label: how messages name its source (the flag, or a config key with its file).

    Returns:
        ``{operation name: weight}`` for every registered operation, in registry order.

    Raises:
        ConfigError: empty spec, bad syntax, unknown name, repeated name, a negative, NaN or
            infinite weight, or all weights zero; the message names the bad item.
    """
    if spec is None or spec.strip().lower() == "default":
        return default_mix()
    items = [item.strip() for item in spec.split(",")]
    if not spec.strip() or all(not item for item in items):
        raise ConfigError(f"{label}: empty mix {spec!r}; {_HINT}")
    by_kind: dict[str, float] = {}
    by_name: dict[str, float] = {}
    for item in items:
        if not item:
            raise ConfigError(f"{label}: empty item in {spec!r}; {_HINT}")
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        raw = raw.strip()
        if not sep or not key or not raw:
            raise ConfigError(f"{label}: bad item {item!r}; {_HINT}")
        if key not in KINDS and key not in BY_NAME:
            raise ConfigError(
                f"{label}: unknown operation {key!r} in {item!r}; allowed: "
                f"{', '.join(KINDS)} or {', '.join(BY_NAME)}"
            )
        try:
            weight = float(raw)
        except ValueError:
            raise ConfigError(
                f"{label}: weight {raw!r} of {key!r} is not a number; use e.g. {key}=10"
            ) from None
        if math.isnan(weight) or math.isinf(weight) or weight < 0:
            raise ConfigError(f"{label}: weight {raw!r} of {key!r} must be a finite number >= 0")
        target = by_kind if key in KINDS else by_name
        if key in target:
            raise ConfigError(f"{label}: {key!r} given twice in {spec!r}")
        target[key] = weight

    weights = {op.name: by_name.get(op.name, 0.0) for op in OPERATIONS}
    for kind, kind_weight in by_kind.items():
        pool = [op for op in OPERATIONS if op.kind == kind and op.name not in by_name]
        if not pool:
            continue
        on = [op for op in pool if op.default_weight > 0]
        shares = [op.default_weight for op in on] if on else [1.0] * len(pool)
        total = sum(shares)
        for op, share in zip(on or pool, shares, strict=True):
            weights[op.name] = kind_weight * share / total
    if sum(weights.values()) <= 0:
        raise ConfigError(f"{label}: every weight is zero in {spec!r}; give at least one > 0")
    return weights
