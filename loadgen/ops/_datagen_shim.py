"""Temporary stand-in for ``loadgen.datagen.generate_rows`` (deleted once datagen lands)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from loadgen import tables
from loadgen.datagen.ids import cpf

_WORDS = np.array(["dor", "febre", "rotina", "retorno", "check-up", "tosse"], dtype=object)


def generate_rows(table: str, ids: Any, rng: np.random.Generator, *,
                  parents: dict[str, Any] | None = None, now: datetime | None = None
                  ) -> dict[str, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    n = ids.size
    now64 = np.datetime64(now or datetime(2026, 1, 1), "us")
    past = now64 - (rng.integers(0, 365 * 86400, n) * 1_000_000).astype("timedelta64[us]")
    parents = parents or {}

    def pick(t: str) -> np.ndarray:
        return rng.choice(np.asarray(parents[t], dtype=np.int64), n)

    def words(prefix: str) -> np.ndarray:
        return np.array([f"{prefix} {w}" for w in rng.choice(_WORDS, n)], dtype=object)

    out: dict[str, np.ndarray] = {"id": ids}
    if table == "pacientes":
        out.update(nome=words("Fulano"), nascimento=(now64 - np.timedelta64(30 * 365, "D")).astype(
            "datetime64[D]").repeat(n), cpf=cpf(ids), telefone=words("(11) 9"),
            endereco=words("Rua"), data_cadastro=past)
    elif table == "pacientes_convenios":
        out.update(paciente_id=pick("pacientes"), convenio_id=pick("convenios"),
                   numero_carteira=words("C"), validade=(now64 + np.timedelta64(300, "D")).astype(
                       "datetime64[D]").repeat(n))
    elif table == "consultas":
        out.update(paciente_id=pick("pacientes"), medico_id=pick("medicos"), data=past,
                   motivo=words("motivo"), status=np.array(["realizada"] * n, dtype=object))
    elif table == "exames":
        out.update(paciente_id=pick("pacientes"), tipo_exame=words("exame"), data=past,
                   resultado=words("normal"))
    elif table == "internacoes":
        out.update(paciente_id=pick("pacientes"), data_entrada=past, data_saida=past,
                   motivo=words("motivo"), quarto=words("Q"))
    assert set(out) == set(tables.BY_NAME[table].columns)
    return out
