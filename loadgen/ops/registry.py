"""Operation registry: every streaming operation as data, read by the engine, summary and ledger.

Weights are relative (they need not add up to 100). The original simulator's eight operations keep
their default weights (inserts 70 %, updates 30 %); the newer ones are off by default (weight 0)
and are enabled with ``--mix``. The SQL and parameter generation live in ``loadgen.ops.workload``.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS: tuple[str, ...] = ("insert", "update", "delete")


@dataclass(frozen=True)
class OperationSpec:
    name: str  # registry name, e.g. "insert_consulta"; also the RowChange.op_name
    kind: str  # "insert" | "update" | "delete": what the operation mainly does
    tables: tuple[str, ...]  # tables it writes, in the order it writes them
    default_weight: float  # relative weight in the default mix; 0 = off by default
    description: str  # one line for --help, the summary and the README


OPERATIONS: tuple[OperationSpec, ...] = (
    OperationSpec("insert_paciente", "insert", ("pacientes",), 5.0, "register a new patient"),
    OperationSpec(
        "insert_consulta",
        "insert",
        ("consultas",),
        30.0,
        "book an appointment (status agendada, date in the coming days)",
    ),
    OperationSpec("insert_exame", "insert", ("exames",), 15.0, "request an exam (no result yet)"),
    OperationSpec(
        "insert_internacao",
        "insert",
        ("internacoes",),
        20.0,
        "open an admission (no discharge date yet)",
    ),
    OperationSpec(
        "update_paciente", "update", ("pacientes",), 8.0, "change a patient's phone and address"
    ),
    OperationSpec(
        "update_consulta",
        "update",
        ("consultas",),
        10.0,
        "close an agendada appointment whose time has come: realizada, cancelada or faltou",
    ),
    OperationSpec(
        "update_exame",
        "update",
        ("exames",),
        7.0,
        "record the result of a pending exam whose date has passed",
    ),
    OperationSpec(
        "update_internacao",
        "update",
        ("internacoes",),
        5.0,
        "discharge an open admission (data_saida >= data_entrada)",
    ),
    OperationSpec(
        "insert_paciente_convenio",
        "insert",
        ("pacientes_convenios",),
        0.0,
        "link a patient to an insurer they are not linked to yet",
    ),
    OperationSpec(
        "delete_paciente_convenio",
        "delete",
        ("pacientes_convenios",),
        0.0,
        "remove a patient-insurer link",
    ),
    OperationSpec(
        "delete_consulta", "delete", ("consultas",), 0.0, "delete a cancelled appointment"
    ),
    OperationSpec(
        "admit_paciente",
        "insert",
        ("pacientes", "pacientes_convenios", "internacoes"),
        0.0,
        "one transaction: register a patient, link an insurer, open an admission",
    ),
)
BY_NAME: dict[str, OperationSpec] = {op.name: op for op in OPERATIONS}
OP_NAMES: tuple[str, ...] = tuple(op.name for op in OPERATIONS)
