"""CDC edge-case scenarios: named runs of the changes that break real pipelines.

Each scenario writes only its own ``cdc_`` tables (``sql/10_scenarios.sql``), records every
committed row change in the ledger (op_name ``scenario:<name>``) and states, as data, what a
correct CDC stream shows. ``run`` serves ``loadgen scenario run``; ``run_step`` is the hook a
stream worker calls to mix a scenario into a normal load.
"""

from __future__ import annotations

from loadgen.scenarios.base import Context, Scenario, ScenarioOptions
from loadgen.scenarios.identity import TABLES as _IDENTITY_TABLES
from loadgen.scenarios.recorder import CommittedTxn, Recorder
from loadgen.scenarios.registry import SCENARIOS
from loadgen.scenarios.runner import (
    SCENARIO_WRITER_ID,
    STREAM_STEP_OPTIONS,
    ScenarioResult,
    drop_tables,
    ensure_tables,
    get,
    run,
    run_on,
    run_step,
    scenarios_of_table,
    table_names,
)

# tables whose replica identity a scenario sets itself (``cdc setup`` leaves them alone)
OWN_IDENTITY_TABLES = frozenset(_IDENTITY_TABLES)

__all__ = [
    "SCENARIOS",
    "SCENARIO_WRITER_ID",
    "STREAM_STEP_OPTIONS",
    "CommittedTxn",
    "Context",
    "OWN_IDENTITY_TABLES",
    "Recorder",
    "Scenario",
    "ScenarioOptions",
    "ScenarioResult",
    "drop_tables",
    "ensure_tables",
    "get",
    "run",
    "run_on",
    "run_step",
    "scenarios_of_table",
    "table_names",
]
