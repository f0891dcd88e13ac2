"""The scenario registry: every named CDC edge case, in order of value."""

from __future__ import annotations

from loadgen.scenarios.base import Scenario
from loadgen.scenarios.ddl import PARTITIONED, SCHEMA_CHANGE
from loadgen.scenarios.identity import REPLICA_IDENTITY
from loadgen.scenarios.keys import DELETE_TOMBSTONE, PK_UPDATE
from loadgen.scenarios.toast import TOAST_UNCHANGED
from loadgen.scenarios.values import NUMERIC_EXTREMES, TIME_EXTREMES, TYPES_SCENARIO, UNICODE
from loadgen.scenarios.volume import BIG_TRANSACTION, ROLLBACK, TRUNCATE

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        TOAST_UNCHANGED,
        REPLICA_IDENTITY,
        PK_UPDATE,
        DELETE_TOMBSTONE,
        TRUNCATE,
        BIG_TRANSACTION,
        ROLLBACK,
        NUMERIC_EXTREMES,
        TIME_EXTREMES,
        TYPES_SCENARIO,
        UNICODE,
        SCHEMA_CHANGE,
        PARTITIONED,
    )
}
