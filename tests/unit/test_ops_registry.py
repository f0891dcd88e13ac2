"""Operations as objects: the registry check catches broken operations; binding; sources; docs."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from loadgen.ops import admission, catalog, consultas, convenios, exames, internacoes, pacientes
from loadgen.ops.checks import (
    RegistryError,
    check_registry,
    operation_problems,
    registry_problems,
)
from loadgen.ops.operation import Block, Operation, ParamSource
from loadgen.ops.registry import OPERATIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _with_statement(op: Operation, **changes: object) -> Operation:
    st = dataclasses.replace(op.statements[0], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(op, statements=(st, *op.statements[1:]))


_UPD = pacientes.UPDATE_PACIENTE
_INS = consultas.INSERT_CONSULTA
_SHORT_SOURCE = dataclasses.replace(
    consultas.NEW_CONSULTA, columns=("paciente_id", "medico_id", "data", "status")
)
_WIDE_SOURCE = dataclasses.replace(
    consultas.NEW_CONSULTA, columns=(*consultas.NEW_CONSULTA.columns, "quarto")
)

BROKEN = {
    "SQL writes another table": (
        _with_statement(
            _UPD, sql="UPDATE medicos SET telefone = %s, endereco = %s WHERE id = %s RETURNING *"
        ),
        "SQL must start UPDATE pacientes",
    ),
    "statement writes an undeclared table": (
        dataclasses.replace(_INS, statements=(exames.INSERT_EXAME.statements[0],)),
        "writes exames, which it does not declare",
    ),
    "declared table never written": (
        dataclasses.replace(_INS, tables=("consultas", "exames")),
        "declares table exames but no statement writes it",
    ),
    "tables out of order": (
        dataclasses.replace(
            admission.ADMIT_PACIENTE,
            tables=("pacientes_convenios", "pacientes", "internacoes"),
        ),
        "not in the order its statements write",
    ),
    "generator lacks a column the SQL takes": (
        _with_statement(_INS, source=_SHORT_SOURCE),
        "parameter 'motivo' has no value",
    ),
    "generator column the SQL does not take": (
        _with_statement(_INS, source=_WIDE_SOURCE),
        "generates 'quarto', which the SQL does not take",
    ),
    "positional placeholders bound in another order": (
        _with_statement(_UPD, columns=("endereco", "telefone", "id")),
        "SQL binds ['telefone', 'endereco', 'id']",
    ),
    "named placeholder without a parameter": (
        _with_statement(consultas.UPDATE_CONSULTA, columns=("status",), chosen=()),
        "do not match parameters ['status']",
    ),
    "parameter not a column of the table": (
        _with_statement(_UPD, columns=("telefone", "endereco", "id", "cpf_novo")),
        "parameter 'cpf_novo' is not a column of pacientes",
    ),
    "change letter not the kind's": (
        dataclasses.replace(_UPD, kind="delete"),
        "change 'u' does not match kind delete",
    ),
    "update without RETURNING *": (
        _with_statement(
            _UPD, sql="UPDATE pacientes SET telefone = %s, endereco = %s WHERE id = %s"
        ),
        "RETURNING *",
    ),
    "update not keyed by id": (
        _with_statement(
            internacoes.UPDATE_INTERNACAO,
            sql="UPDATE internacoes SET data_saida = now() WHERE paciente_id = %s RETURNING *",
            columns=("paciente_id",),
            chosen=("paciente_id",),
        ),
        "WHERE id = <parameter>",
    ),
    "inserted id not from the sequence": (
        _with_statement(
            _INS,
            columns=("id", *consultas.NEW_CONSULTA.columns),
            chosen=("id",),
        ),
        "inserts id without taking it from the consultas sequence",
    ),
    "ON CONFLICT on a non-key": (
        _with_statement(
            convenios.INSERT_PACIENTE_CONVENIO, on_conflict=("paciente_id", "validade")
        ),
        "is not a natural key of pacientes_convenios",
    ),
    "scenario step name": (
        dataclasses.replace(_INS, name="scenario:toast"),
        "lower_snake_case",
    ),
    "negative weight": (dataclasses.replace(_INS, default_weight=-1.0), "finite number >= 0"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_operation_is_refused(case: str) -> None:
    op, needle = BROKEN[case]
    problems = operation_problems(op)
    assert any(needle in p for p in problems), problems
    assert registry_problems(OPERATIONS) == []  # the registry as shipped passes
    swapped = [op if o.name == op.name else o for o in OPERATIONS]
    with pytest.raises(RegistryError) as raised:
        check_registry(swapped if op in swapped else [*OPERATIONS, op])
    assert needle in str(raised.value)


def test_a_name_or_a_parameter_source_given_twice_is_refused() -> None:
    assert "registered twice" in " ".join(registry_problems([*OPERATIONS, _INS]))
    impostor = dataclasses.replace(consultas.NEW_CONSULTA)  # equal, but its own buffer key
    twin = dataclasses.replace(_with_statement(_INS, source=impostor), name="insert_consulta_again")
    problems = registry_problems([*OPERATIONS, twin])
    assert any("two different parameter sources are named 'new_consultas'" in p for p in problems)


def test_bind_puts_chosen_and_generated_values_in_placeholder_order() -> None:
    # admit_paciente's admission: the chosen paciente overrides the generated one
    st = internacoes.ADMIT
    generated = [(99, "entrada-a", None, "motivo-a", "Q1"), (98, "entrada-b", None, "m-b", "Q2")]
    bound = st.bind([(7,), (8,)], generated)
    assert bound == [(7, "entrada-a", None, "motivo-a", "Q1"), (8, "entrada-b", None, "m-b", "Q2")]
    # update_paciente: generated values first, the chosen id last
    assert pacientes.UPDATE.bind([(5,)], [("tel", "end")]) == [("tel", "end", 5)]
    # named placeholders get mappings
    assert consultas.UPDATE.bind([(3,)], [("realizada",)]) == [{"status": "realizada", "id": 3}]
    assert consultas.DELETE.bind([(4,), (6,)], ()) == [(4,), (6,)]
    with pytest.raises(ValueError):
        pacientes.UPDATE.bind([(1,), (2,)], [("tel", "end")])


def _sources() -> list[ParamSource]:
    seen: dict[str, ParamSource] = {}
    for op in OPERATIONS:
        for st in op.statements:
            if st.source is not None:
                seen.setdefault(st.source.name, st.source)
    return list(seen.values())


@pytest.mark.parametrize("source", _sources(), ids=lambda s: s.name)
def test_every_parameter_source_generates_its_declared_columns(source: ParamSource) -> None:
    n = 5
    parents = {
        "pacientes": np.arange(1, 41, dtype=np.int64),
        "medicos": np.arange(1, 9, dtype=np.int64),
        "convenios": np.arange(1, 13, dtype=np.int64),
    }
    ids = np.arange(1001, 1001 + n, dtype=np.int64)
    block = Block(np.random.default_rng(1), ids, datetime(2026, 1, 1, 12), lambda: parents)
    batch = source.generate(block)
    missing = [c for c in source.columns if c not in batch]
    assert not missing, f"{source.name} does not generate {missing}"
    assert all(len(batch[c]) == n for c in source.columns)
    if source.sequence is not None:  # rows are numbered by the sequence's ids
        assert batch["id"].tolist() == ids.tolist()


def test_docs_table_is_the_registrys() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert catalog.splice(doc) == doc, "docs/operations.md's table drifted: run `make docs`"
    for op in OPERATIONS:
        assert f"| `{op.name}` | {op.kind} |" in doc


def test_docs_check_fails_on_a_drifted_table_and_make_docs_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "operations.md"
    path.write_text(DOC.read_text(encoding="utf-8").replace("| 30 |", "| 31 |"), "utf-8")
    assert catalog.main([str(path), "--check"]) == 1
    assert catalog.main([str(path)]) == 0
    assert catalog.main([str(path), "--check"]) == 0
    assert path.read_text(encoding="utf-8") == DOC.read_text(encoding="utf-8")
    path.write_text("no markers here\n", "utf-8")
    assert catalog.main([str(path), "--check"]) == 2
