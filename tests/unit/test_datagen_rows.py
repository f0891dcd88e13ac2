"""Row generators: shapes, dtypes, value ranges, date rules, determinism and worker splits."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from loadgen import datagen, tables
from loadgen.datagen import rows

NOW = datetime(2025, 3, 14, 0, 0, tzinfo=UTC)  # a reference day, as the seeder uses
NOW64 = np.datetime64("2025-03-14T00:00:00", "s")
N = 6_000
PARENTS = datagen.ParentIds(
    pacientes=np.arange(1, 2_001, dtype=np.int64),
    medicos=np.arange(1, 201, dtype=np.int64),
    convenios=np.arange(1, 13, dtype=np.int64),
)
PHONE = re.compile(r"\(\d{2}\) (9\d{4}|[2-5]\d{3})-\d{4}")
TEXT_COLUMNS = {
    "nome", "cpf", "telefone", "endereco", "crm", "especialidade", "cnpj", "tipo", "cobertura",
    "numero_carteira", "motivo", "status", "tipo_exame", "resultado", "quarto",
}  # fmt: skip
DATE_COLUMNS = {"nascimento", "validade"}
TIMESTAMP_COLUMNS = {"data_cadastro", "data", "data_entrada", "data_saida"}


def _gen(table: str, seed: int = 1, n: int = N, **kw: object) -> dict[str, np.ndarray]:
    ids = np.arange(1, n + 1, dtype=np.int64)
    parents = kw.pop("parents", PARENTS)
    now = kw.pop("now", NOW)
    rng = np.random.default_rng(seed)
    return datagen.generate_rows(table, ids, rng, parents=parents, now=now, **kw)  # type: ignore[arg-type]


def _past(col: np.ndarray) -> np.ndarray:
    return col.astype("datetime64[s]") < NOW64


@pytest.mark.parametrize("table", tables.TABLE_NAMES)
def test_columns_shapes_and_dtypes(table: str) -> None:
    batch = _gen(table)
    assert tuple(batch) == tables.BY_NAME[table].columns
    for name, col in batch.items():
        assert col.shape == (N,), name
        if name == "id" or name.endswith("_id"):
            assert col.dtype == np.int64, name
        elif name in DATE_COLUMNS:
            assert col.dtype == np.dtype("datetime64[D]"), name
        elif name in TIMESTAMP_COLUMNS:
            assert col.dtype == np.dtype("datetime64[s]"), name
        else:
            assert name in TEXT_COLUMNS and col.dtype == object, name
            assert all(isinstance(v, str) for v in col.tolist() if v is not None), name
    assert (batch["id"] == np.arange(1, N + 1)).all()


def test_pacientes_values() -> None:
    b = _gen("pacientes")
    birth = b["nascimento"]
    assert (birth < np.datetime64("2025-03-14")).all()
    age_y = (np.datetime64("2025-03-14") - birth).astype(np.int64) / 365.25
    assert age_y.max() <= 100.5 and 30 < np.median(age_y) < 45
    assert (age_y < 18).mean() > 0.15 and (age_y >= 65).mean() > 0.05  # a real pyramid
    cad = b["data_cadastro"]
    assert _past(cad).all() and (cad >= birth.astype("datetime64[s]")).all()
    assert all(datagen.is_valid_cpf(c) for c in b["cpf"].tolist())
    phones = [p for p in b["telefone"].tolist() if p is not None]
    assert 0.9 * N < len(phones) < N and all(PHONE.fullmatch(p) for p in phones)
    assert all(re.search(r", \d+ - .+, .+ - [A-Z]{2}, CEP \d{5}-\d{3}$", e) for e in b["endereco"])
    assert max(len(e) for e in b["endereco"]) <= 200 and max(len(x) for x in b["nome"]) <= 150


def test_medicos_values() -> None:
    b = _gen("medicos")
    assert all(re.fullmatch(r"Dra?\. \S.+", x) for x in b["nome"].tolist())
    assert len(set(b["crm"].tolist())) == N
    assert all(PHONE.fullmatch(p) for p in b["telefone"].tolist())


def test_consultas_status_follows_the_date() -> None:
    b = _gen("consultas")
    status, data = b["status"], b["data"]
    assert set(status.tolist()) == set(tables.CONSULTA_STATUSES)
    is_agendada = status == "agendada"
    assert (~_past(data[is_agendada])).all()
    assert (data[is_agendada] >= NOW64 + np.timedelta64(1, "D")).all()
    assert _past(data[~is_agendada]).all()
    assert np.isin(b["paciente_id"], PARENTS.pacientes).all()
    assert np.isin(b["medico_id"], PARENTS.medicos).all()


def test_exames_result_only_in_the_past_and_some_pending() -> None:
    b = _gen("exames")
    past = _past(b["data"])
    has_result = np.array([r is not None for r in b["resultado"].tolist()])
    assert not has_result[~past].any()
    assert (~past).any()
    pending_share = (~has_result[past]).mean()
    assert 0.05 < pending_share < 0.3


def test_internacoes_open_or_closed_in_order() -> None:
    b = _gen("internacoes")
    entrada, saida = b["data_entrada"], b["data_saida"]
    is_open = np.isnat(saida)
    assert 0.02 < is_open.mean() < 0.2
    assert _past(entrada).all()
    assert (saida[~is_open] >= entrada[~is_open]).all() and _past(saida[~is_open]).all()


def test_links_unique_and_validade_mixed() -> None:
    b = _gen("pacientes_convenios", n=2_500)
    pairs = set(zip(b["paciente_id"].tolist(), b["convenio_id"].tolist(), strict=True))
    assert len(pairs) == 2_500
    assert len(set(b["paciente_id"].tolist())) == 2_000  # every paciente gets one first
    expired = b["validade"] < np.datetime64("2025-03-14")
    assert 0.05 < expired.mean() < 0.3
    assert all(re.fullmatch(r"\d{4} \d{4} \d{4} \d{4}", x) for x in b["numero_carteira"])


def test_link_pairs_fill_every_slot_then_refuse() -> None:
    parents = datagen.ParentIds(pacientes=np.arange(10, 15), convenios=np.arange(1, 13))
    paciente, convenio = datagen.link_pairs(np.arange(100, 160), parents)
    assert len(set(zip(paciente.tolist(), convenio.tolist(), strict=True))) == 60
    with pytest.raises(ValueError, match="exceed"):
        datagen.link_pairs(np.arange(100, 161), parents)


def test_fresh_rows_are_new_events() -> None:
    now = datetime(2025, 3, 14, 15, 30, 12)
    now64 = np.datetime64("2025-03-14T15:30:12", "s")
    assert (_gen("pacientes", now=now, fresh=True)["data_cadastro"] == now64).all()
    c = _gen("consultas", now=now, fresh=True)
    assert (c["status"] == "agendada").all() and (c["data"] > now64).all()
    e = _gen("exames", now=now, fresh=True)
    assert all(r is None for r in e["resultado"]) and (e["data"] > now64).all()
    i = _gen("internacoes", now=now, fresh=True)
    assert np.isnat(i["data_saida"]).all() and (i["data_entrada"] <= now64).all()


def test_missing_parents_are_refused() -> None:
    with pytest.raises(ValueError, match="medicos"):
        _gen("consultas", parents=datagen.ParentIds(pacientes=np.arange(1, 5)))


def _equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(a[k].tolist() == b[k].tolist() for k in a)


@pytest.mark.parametrize("table", tables.TABLE_NAMES)
def test_same_seed_same_rows_other_seed_other_rows(table: str) -> None:
    assert _equal(_gen(table, seed=5, n=500), _gen(table, seed=5, n=500))
    other = _gen(table, seed=6, n=500)
    same = _gen(table, seed=5, n=500)
    assert not _equal(other, same)


def test_piece_content_does_not_depend_on_the_worker_split() -> None:
    """Two 'workers' taking alternate pieces, in any order, produce the same rows as one."""
    first, stop = 7, 3 * datagen.CHUNK_IDS + 123
    pieces = list(datagen.iter_pieces(first, stop))
    assert pieces[0][0] == first and pieces[-1][1] == stop
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:], strict=False))

    def run(order: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, np.ndarray]]:
        return {
            p: datagen.generate_piece("consultas", 42, *p, parents=PARENTS, now=NOW) for p in order
        }

    one = run(pieces)
    two = {**run(pieces[1::2][::-1]), **run(pieces[0::2])}
    for p in pieces:
        assert _equal(one[p], two[p])
    with pytest.raises(ValueError, match="chunk boundary"):
        datagen.generate_piece("pacientes", 1, 1, datagen.CHUNK_IDS + 2, parents=PARENTS, now=NOW)


def test_update_helpers() -> None:
    rng = np.random.default_rng(9)
    assert all(PHONE.fullmatch(p) for p in datagen.new_phones(rng, 200).tolist())
    assert all(", CEP " in a for a in datagen.new_addresses(rng, 200).tolist())
    assert set(datagen.consulta_outcomes(rng, 500).tolist()) == {"realizada", "cancelada", "faltou"}
    assert None not in datagen.exam_results(rng, 200).tolist()
    assert all(q for q in datagen.new_quartos(rng, 50).tolist())
    now = datetime(2025, 3, 14, 12, 0)
    entrada = np.array(["2025-03-14T11:00:00", "2025-01-01T00:00:00"], dtype="datetime64[s]")
    saida = datagen.discharge_times(rng, entrada, now)
    assert (saida >= entrada).all() and (saida <= np.datetime64(now, "s")).all()
    assert saida.dtype == np.dtype("datetime64[s]")


def test_reference_day_is_midnight_utc() -> None:
    ref = datagen.reference_day()
    assert ref.tzinfo is not None and (ref.hour, ref.minute, ref.second) == (0, 0, 0)
    assert datetime.now(UTC) - ref < timedelta(days=1)
    assert rows.CONSULTA_STATUS_PROBS.keys() == set(tables.CONSULTA_STATUSES)
