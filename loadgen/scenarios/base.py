"""What a scenario is (data) and what it runs with (its context and options)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loadgen.db import DEFAULT_RETRY_FOR_S
from loadgen.scenarios.recorder import Recorder

DEFAULT_BIG_TXN_CHANGES = 100_000
DEFAULT_NUM_CONCURRENT_WORKERS = 2
DEFAULT_SMALL_TXNS_PER_WORKER = 50
DEFAULT_TOAST_BYTES = 12_000


@dataclass(frozen=True)
class ScenarioOptions:
    """Sizes of a scenario run (and how long its connections retry an unreachable server);
    the defaults are what ``loadgen scenario run`` uses."""

    big_txn_changes: int = DEFAULT_BIG_TXN_CHANGES  # rows changed by big-transaction's one txn
    num_concurrent_workers: int = DEFAULT_NUM_CONCURRENT_WORKERS  # extra connections (0: none)
    small_txns_per_worker: int = DEFAULT_SMALL_TXNS_PER_WORKER  # at least this many each
    toast_bytes: int = DEFAULT_TOAST_BYTES  # size of toast-unchanged's large values (bytes)
    connect_retry_s: float = DEFAULT_RETRY_FOR_S  # [db] connect_retry_s, every connection


@dataclass
class Context:
    """What a scenario's ``run`` gets. ``rec`` runs and records its transactions.

    ``dsn`` and ``ledger_path`` let a scenario open more connections (big-transaction's
    concurrent workers, each with its own ledger writer ``writer_id + 1 + i``); when ``dsn`` is
    None (inside a stream worker) those parts are skipped. Recorders of extra connections are
    appended to ``extra`` so their counts (and kept transactions) reach the result.
    """

    rec: Recorder
    options: ScenarioOptions
    dsn: str | None = None
    ledger_path: str | None = None
    writer_id: int = 0
    extra: list[Recorder] = field(default_factory=list)
    run_id: str = ""  # the ledger run id of the extra connections' parts


@dataclass(frozen=True)
class Scenario:
    """A named CDC edge case, as data: the registry lists these."""

    name: str  # CLI name, e.g. "toast-unchanged"
    summary: str  # one line: what it exercises
    expect: str  # one line: what a correct CDC stream shows
    tables: tuple[str, ...]  # the cdc_ tables it writes (for publications)
    run: Callable[[Context], None]  # runs it once through ctx.rec (blocks)
    is_exclusive: bool = False  # DDL or TRUNCATE: runs under an advisory lock, one at a time
    track_before: bool = False  # record the before-images the replica identity obliges
