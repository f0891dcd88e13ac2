"""Per-table columnar row generators: ``generate_rows(table, ids, rng, parents=..., now=...)``.

A batch is a ``dict[str, ndarray]`` with one equal-length array per column of
``tables.BY_NAME[table].columns`` (COPY order, ``id`` first). Column dtypes:

- ids and foreign keys: ``int64``;
- DATE columns (``nascimento``, ``validade``): ``datetime64[D]``;
- TIMESTAMP columns (``data_cadastro``, ``data``, ``data_entrada``, ``data_saida``):
  ``datetime64[s]``, UTC, ``NaT`` for NULL;
- text: object arrays of ``str``, ``None`` for NULL.

``col.tolist()`` turns any column into Python values psycopg adapts (int, date, datetime,
str, None). Natural keys (cpf, crm, cnpj) are functions of the id (see ``ids``); the
``(paciente_id, convenio_id)`` pair of a link is a function of its slot (see
``_pacientes_convenios``). Everything else is drawn from ``rng``, so row content depends only
on the generator's state, the ids, the parents and ``now``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from loadgen import tables
from loadgen.datagen import fields
from loadgen.datagen import ids as idgen
from loadgen.datagen.dates import (
    DAY_S,
    NAT,
    YEAR_S,
    epoch_s,
    slot_times,
    to_date,
    to_timestamp,
)
from loadgen.datagen.text import Pool, Text
from loadgen.datagen.vocab import build_vocab

Int64Array = npt.NDArray[np.int64]
Batch = dict[str, npt.NDArray[np.generic]]
LazyBatch = dict[str, "npt.NDArray[np.generic] | Text"]

# Shares (documented in the README): realistic mixes that keep every stream operation fed.
PHONE_NULL_SHARE = 0.02
CONSULTA_STATUS_PROBS: dict[str, float] = {
    "agendada": 0.20,
    "realizada": 0.60,
    "cancelada": 0.10,
    "faltou": 0.10,
}
CONSULTA_PAST_DAYS = 730  # past consultas/exames/internações span the last two years
CONSULTA_FUTURE_DAYS = 90  # agendadas: tomorrow .. +90 days
EXAME_FUTURE_SHARE = 0.15  # scheduled exams (no result)
EXAME_PENDING_SHARE = 0.15  # past exams still waiting for their result (NULL resultado)
INTERNACAO_OPEN_SHARE = 0.08  # open admissions (data_saida NULL), admitted in the last 30 days
CARTEIRA_EXPIRED_SHARE = 0.15  # insurance cards already expired


_TITLES = Pool(["Dr. ", "Dra. "])  # by name_is_female


def _empty() -> Int64Array:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class ParentIds:
    """Existing parent ids that foreign keys are drawn from (``int64`` arrays, any order).

    For ``pacientes_convenios``, ``pacientes`` are the pacientes that receive the new links:
    the pair ``(paciente_id, convenio_id)`` is unique by construction only when those pacientes
    have no links yet (e.g. just inserted) and ``len(ids) <= len(pacientes) * len(convenios)``.
    Link slot ``i = id - link_base_id`` goes to paciente ``pacientes[i % P]`` with its
    ``(i // P)``-th convenio in a per-paciente rotation of ``convenios``.
    """

    pacientes: Int64Array = field(default_factory=_empty)
    medicos: Int64Array = field(default_factory=_empty)
    convenios: Int64Array = field(default_factory=_empty)
    link_base_id: int | None = None  # id of link slot 0; default: the batch's first id


def _need(arr: Int64Array, table: str, parent: str) -> Int64Array:
    arr = np.asarray(arr, dtype=np.int64)
    if arr.size == 0:
        raise ValueError(f"{table} rows need existing {parent} ids, got none")
    return arr


def _pick(rng: np.random.Generator, pool: Pool, n: int) -> Text:
    return pool.take(rng.integers(0, len(pool), n))


def _pick_id(rng: np.random.Generator, ids: Int64Array, n: int) -> Int64Array:
    return ids[rng.integers(0, len(ids), n)]


def _with_nulls(rng: np.random.Generator, values: Text, share: float) -> Text:
    return values.with_nulls(rng.random(len(values)) < share)


def _pacientes(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    v = build_vocab()
    day0 = now_s - now_s % DAY_S
    band = rng.choice(len(v.age_band_probs), n, p=v.age_band_probs)
    age_s = ((band + rng.random(n)) * 5 * YEAR_S).astype(np.int64)
    birth_s = day0 - DAY_S - age_s  # at least one day before the reference day
    endereco, ddd = fields.addresses_text(rng, n)
    if fresh:
        cadastro_s = np.full(n, now_s, dtype=np.int64)
    else:  # registered some time in the last 10 years, never before birth, at least 1 h ago
        span_s = np.minimum(now_s - birth_s, int(10 * YEAR_S))
        cadastro_s = now_s - 3600 - (rng.random(n) * (span_s - 3600)).astype(np.int64)
    return {
        "id": ids,
        "nome": _pick(rng, v.names, n),
        "nascimento": to_date(birth_s),
        "cpf": idgen.cpf_text(ids),
        "telefone": _with_nulls(rng, fields.phones_text(rng, ddd), PHONE_NULL_SHARE),
        "endereco": endereco,
        "data_cadastro": to_timestamp(cadastro_s),
    }


def _medicos(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    v = build_vocab()
    k = rng.integers(0, len(v.names), n)
    title = _TITLES.take(v.name_is_female[k].astype(np.int64))
    return {
        "id": ids,
        "nome": title + v.names.take(k),
        "crm": idgen.crm_text(ids),
        "especialidade": _pick(rng, v.especialidades, n),
        "telefone": fields.phones_text(rng, fields.city_ddds(rng, n)),
    }


def _convenios(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    v = build_vocab()
    return {
        "id": ids,
        "nome": _pick(rng, v.convenio_nomes, n),
        "cnpj": idgen.cnpj_text(ids),
        "tipo": v.convenio_tipos.take(rng.integers(0, 2, n)),
        "cobertura": _pick(rng, v.convenio_coberturas, n),
    }


def link_pairs(ids: Int64Array, parents: ParentIds) -> tuple[Int64Array, Int64Array]:
    """Return ``(paciente_id, convenio_id)`` of link ids: unique per slot (see ``ParentIds``).

    Raises:
        ValueError: no pacientes/convenios, or more slots than pacientes x convenios.
    """
    pac = _need(parents.pacientes, "pacientes_convenios", "pacientes")
    conv = np.sort(_need(parents.convenios, "pacientes_convenios", "convenios"))
    base = int(ids[0]) if parents.link_base_id is None else parents.link_base_id
    slot = ids - base
    if slot.size and (slot.min() < 0 or slot.max() >= len(pac) * len(conv)):
        raise ValueError(
            f"link slots {slot.min()}..{slot.max()} exceed "
            f"{len(pac)} pacientes x {len(conv)} convenios"
        )
    paciente = pac[slot % len(pac)]
    # Per-paciente rotation: a multiplicative hash of the id picks the first convenio.
    offset = (paciente.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    k = (offset.astype(np.int64) + slot // len(pac)) % len(conv)
    return paciente, conv[k]


def _pacientes_convenios(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    paciente, convenio = link_pairs(ids, parents)
    day0 = now_s - now_s % DAY_S
    expired = rng.random(n) < CARTEIRA_EXPIRED_SHARE
    days = np.where(expired, -rng.integers(1, 366, n), rng.integers(30, 3 * 365, n))
    return {
        "id": ids,
        "paciente_id": paciente,
        "convenio_id": convenio,
        "numero_carteira": fields.digit_strings(rng, n, (4, 4, 4, 4)),
        "validade": to_date(day0 + days * DAY_S),
    }


def _consultas(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    v = build_vocab()
    pac = _need(parents.pacientes, "consultas", "pacientes")
    med = _need(parents.medicos, "consultas", "medicos")
    day0 = now_s - now_s % DAY_S
    names = list(CONSULTA_STATUS_PROBS)
    status_idx = (
        np.zeros(n, dtype=np.int64)
        if fresh
        else rng.choice(len(names), n, p=np.array(list(CONSULTA_STATUS_PROBS.values())))
    )
    status = Pool(names)
    future = status_idx == 0  # agendada: strictly after today; the others: strictly before
    past_s = slot_times(rng, day0, -CONSULTA_PAST_DAYS, -1, n)
    future_s = slot_times(rng, day0, 1, CONSULTA_FUTURE_DAYS, n)
    return {
        "id": ids,
        "paciente_id": _pick_id(rng, pac, n),
        "medico_id": _pick_id(rng, med, n),
        "data": to_timestamp(np.where(future, future_s, past_s)),
        "motivo": _pick(rng, v.motivos_consulta, n),
        "status": status.take(status_idx),
    }


def _exames(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    v = build_vocab()
    pac = _need(parents.pacientes, "exames", "pacientes")
    day0 = now_s - now_s % DAY_S
    future = np.ones(n, dtype=bool) if fresh else rng.random(n) < EXAME_FUTURE_SHARE
    when_s = np.where(
        future,
        slot_times(rng, day0, 1, 60, n),
        slot_times(rng, day0, -CONSULTA_PAST_DAYS, -1, n),
    )
    has_result = ~future & (rng.random(n) >= EXAME_PENDING_SHARE)
    resultado = v.resultados.take(rng.choice(len(v.resultados), n, p=v.resultado_probs))
    resultado = resultado.with_nulls(~has_result)
    return {
        "id": ids,
        "paciente_id": _pick_id(rng, pac, n),
        "tipo_exame": _pick(rng, v.tipos_exame, n),
        "data": to_timestamp(when_s),
        "resultado": resultado,
    }


def _internacoes(
    rng: np.random.Generator, ids: Int64Array, parents: ParentIds, now_s: int, fresh: bool
) -> LazyBatch:
    n = len(ids)
    v = build_vocab()
    pac = _need(parents.pacientes, "internacoes", "pacientes")
    day0 = now_s - now_s % DAY_S
    if fresh:  # just admitted (within the last 6 hours), still open
        is_open = np.ones(n, dtype=bool)
        entrada_s = now_s - rng.integers(0, 6 * 3600, n)
    else:
        is_open = rng.random(n) < INTERNACAO_OPEN_SHARE
        open_s = now_s - rng.integers(3600, 30 * DAY_S, n)
        closed_s = (
            day0 + rng.integers(-CONSULTA_PAST_DAYS, -1, n) * DAY_S + rng.integers(0, DAY_S, n)
        )
        entrada_s = np.where(is_open, open_s, closed_s)
    saida_s = np.minimum(entrada_s + fields.length_of_stay_s(rng, n), now_s - 60)
    saida_s = np.where(is_open, NAT, np.maximum(saida_s, entrada_s))
    return {
        "id": ids,
        "paciente_id": _pick_id(rng, pac, n),
        "data_entrada": to_timestamp(entrada_s),
        "data_saida": to_timestamp(saida_s),
        "motivo": _pick(rng, v.motivos_internacao, n),
        "quarto": _pick(rng, v.quartos, n),
    }


_Generator = Callable[[np.random.Generator, Int64Array, ParentIds, int, bool], LazyBatch]
GENERATORS: dict[str, _Generator] = {
    "pacientes": _pacientes,
    "medicos": _medicos,
    "convenios": _convenios,
    "pacientes_convenios": _pacientes_convenios,
    "consultas": _consultas,
    "exames": _exames,
    "internacoes": _internacoes,
}


def generate_rows(
    table: str,
    ids: Int64Array,
    rng: np.random.Generator,
    *,
    parents: ParentIds | None = None,
    now: datetime,
    fresh: bool = False,
) -> Batch:
    """Generate one columnar batch of rows for ``table``.

    Args:
        table: a name in ``tables.BY_NAME``.
        ids: ``int64`` ``(n,)`` primary keys of the new rows (from the sequence or a seed range).
            Natural keys derive from them: pacientes ids must be in ``1..ids.CPF_SPACE``,
            medicos in ``1..ids.CRM_SPACE``.
        rng: the caller's generator; the only source of randomness.
        parents: existing parent ids for foreign keys (required for the child tables).
        now: reference instant (naive = UTC). Past events end before ``now``'s day starts,
            ``agendada`` consultas and scheduled exames start after it ends.
        fresh: rows as the stream creates them: pacientes registered at ``now``; consultas
            ``agendada`` in the future; exames scheduled (no result); internações just opened.

    Returns:
        dict of equal-length arrays keyed by ``tables.BY_NAME[table].columns`` (see module doc).

    Raises:
        KeyError: unknown table.
        ValueError: an id outside its natural key's space, or missing parents.
    """
    gen = GENERATORS[table]
    ids = np.asarray(ids, dtype=np.int64)
    batch = gen(rng, ids, parents or ParentIds(), epoch_s(now), fresh)
    return {
        c: (v.to_objects() if isinstance(v, Text) else v)
        for c, v in ((c, batch[c]) for c in tables.BY_NAME[table].columns)
    }


def generate_lazy(
    table: str,
    ids: Int64Array,
    rng: np.random.Generator,
    *,
    parents: ParentIds | None = None,
    now: datetime,
) -> LazyBatch:
    """Like ``generate_rows``, but text columns stay ``Text`` (for COPY encoding, no ``str``).

    Same draws, same values: ``Text.to_objects()`` of each column equals ``generate_rows``'s.
    """
    gen = GENERATORS[table]
    batch = gen(rng, np.asarray(ids, dtype=np.int64), parents or ParentIds(), epoch_s(now), False)
    return {c: batch[c] for c in tables.BY_NAME[table].columns}
