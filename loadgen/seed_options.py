"""What a seed is asked to do and what it reports: ``SeedOptions``, ``validate``, results.

Shared by the orchestrator (``loadgen.seed``), the empty-table fast path (``seed_fast``) and
the append path (``seed_append``); no database access here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loadgen import db, limits, tables
from loadgen.config import SeedConfig
from loadgen.errors import ConfigError

METHODS = ("copy", "insert")
DEFAULT_BLOCK_ROWS = 10_000  # rows per COPY write / executemany batch

# progress(table, rows_done, rows_total, elapsed_s); called in the coordinating thread
ProgressFn = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class SeedOptions:
    """What to seed and how (``SeedConfig`` resolved into one object)."""

    scale: float = 1.0  # multiplies every non-lookup table's rows at scale 1
    workers: int = 2  # loader processes (1 = in this process)
    seed: int | None = None  # RNG seed; None draws one (reported in the result)
    method: str = "copy"  # "copy" (COPY FROM STDIN) or "insert" (batched executemany)
    block_rows: int = DEFAULT_BLOCK_ROWS  # rows per COPY write / executemany batch
    append: bool = False  # allow seeding tables that already hold rows
    counts: dict[str, int] = field(default_factory=dict)  # rows at scale 1 (SEED_*)
    reference: datetime | None = None  # data anchor; None = today 00:00 UTC
    connect_retry_s: float = db.DEFAULT_RETRY_FOR_S  # [db] connect_retry_s, every connection

    @classmethod
    def from_config(cls, cfg: SeedConfig, **overrides: Any) -> SeedOptions:
        """Build options from the ``[seed]`` settings section, then apply ``overrides``."""
        counts = {t.name: int(getattr(cfg, t.name)) for t in tables.TABLES if not t.is_lookup}
        opts = cls(
            scale=cfg.scale,
            workers=cfg.workers,
            seed=cfg.seed,
            method=cfg.method,
            block_rows=cfg.block_rows,
            append=cfg.append,
            counts=counts,
        )
        return _replace(opts, **overrides)

    def reset_command(self) -> str:
        """The ``loadgen reset --yes ...`` that recreates the tables and seeds like this."""
        flags = [f"--scale {self.scale:g}", f"--workers {self.workers}"]
        flags += [f"--seed {self.seed}"] if self.seed is not None else []
        flags += ["--insert"] if self.method == "insert" else []
        return " ".join(["loadgen reset --yes", *flags])

    def rows_for(self, table: str) -> int:
        """Rows this run adds to ``table`` (0 for lookup tables)."""
        spec = tables.BY_NAME[table]
        if spec.is_lookup:
            return 0
        return int(round(self.counts.get(table, spec.seed_rows) * self.scale))


def _replace(opts: SeedOptions, **changes: Any) -> SeedOptions:
    from dataclasses import replace

    return replace(opts, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class TableResult:
    table: str
    rows: int  # rows added
    seconds: float  # wall time of this table's load, seconds
    first_id: int  # first id loaded (0 when no rows)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SeedResult:
    tables: list[TableResult]
    seed: int  # the RNG seed used (pass it as --seed to reproduce)
    method: str
    workers: int  # loader processes actually used
    reference: datetime  # data anchor
    seconds: float  # total wall time, seconds
    phases_s: dict[str, float]  # prepare, load, index, analyze (seconds)
    path: str = "append"  # "empty" (keys dropped, COPY FREEZE, keys rebuilt) or "append"
    generate_cpu_s: float = 0.0  # CPU seconds spent generating + encoding rows (empty path)
    starved_s: float = 0.0  # seconds the loaders waited for generated rows, summed (empty path)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def validate(options: SeedOptions) -> None:
    """Raise ConfigError naming the bad option, its value and its range (``loadgen.limits``).

    ``config.load`` checked each setting already; options built in code get the same checks,
    plus the one across settings: each table's rows (count at scale 1 x scale).
    """
    if options.method not in METHODS:
        raise ConfigError(f"seed method {options.method!r} is invalid; use copy or insert")
    for flag, key, value in (
        ("--scale", "scale", options.scale),
        ("--workers", "workers", options.workers),
        ("seed.block_rows", "block_rows", options.block_rows),
        ("--seed", "seed", options.seed),
    ):
        bounds = limits.range_of("seed", key)
        problem = bounds.problem(value) if bounds is not None and value is not None else None
        if problem:
            raise ConfigError(f"{flag} = {value!r} {problem}")
    for table in options.counts or {t.name: t.seed_rows for t in tables.TABLES}:
        rows = options.rows_for(table)
        if rows > limits.MAX_SEED_ROWS:
            raise ConfigError(
                f"--scale {options.scale:g} gives {rows:,} {table} rows; at most"
                f" {limits.MAX_SEED_ROWS:,} per table in one seed (run several seeds with"
                " --append, or lower --scale / SEED_*)"
            )
