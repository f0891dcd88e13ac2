"""The operation registry: every streaming operation, one ``Operation`` object each.

Read by the workload (dispatch, capacities), the mix parser, the summary and tally (names,
kinds), the ledger (``RowChange.op_name``), ``loadgen ops list`` and docs/operations.md's
table. The order is the registry order everywhere (``--mix`` weights, the summary, draws:
changing it changes what a seed produces). Weights are relative (they need not add up to 100):
the original simulator's eight operations keep their default weights (inserts 70 %, updates
30 %); the others are off by default (weight 0) and are enabled with ``--mix``. Checked at
import by ``loadgen.ops.checks`` (raises RegistryError).
"""

from __future__ import annotations

from loadgen.ops import admission, consultas, convenios, exames, internacoes, pacientes
from loadgen.ops.checks import check_registry
from loadgen.ops.operation import KINDS, Operation

__all__ = ["BY_NAME", "KINDS", "OPERATIONS", "OP_NAMES", "Operation"]

OPERATIONS: tuple[Operation, ...] = (
    pacientes.INSERT_PACIENTE,
    consultas.INSERT_CONSULTA,
    exames.INSERT_EXAME,
    internacoes.INSERT_INTERNACAO,
    pacientes.UPDATE_PACIENTE,
    consultas.UPDATE_CONSULTA,
    exames.UPDATE_EXAME,
    internacoes.UPDATE_INTERNACAO,
    convenios.INSERT_PACIENTE_CONVENIO,
    convenios.DELETE_PACIENTE_CONVENIO,
    consultas.DELETE_CONSULTA,
    admission.ADMIT_PACIENTE,
)
check_registry(OPERATIONS)

BY_NAME: dict[str, Operation] = {op.name: op for op in OPERATIONS}
OP_NAMES: tuple[str, ...] = tuple(op.name for op in OPERATIONS)
