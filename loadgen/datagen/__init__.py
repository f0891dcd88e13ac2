"""Columnar, vectorised generation of realistic pt_BR hospital data, and its COPY encoding.

Public API (see each module for shapes and dtypes):

- ``generate_rows(table, ids, rng, *, parents, now, fresh=False) -> dict[str, ndarray]``:
  one array per column of ``tables.BY_NAME[table].columns``, equal lengths.
- ``ParentIds``: existing parent ids that foreign keys are drawn from.
- ``generate_piece`` / ``iter_pieces`` / ``chunk_rng``: the seeder's deterministic chunk grid.
- Update helpers for the stream (vectorised, ``(n,)`` arrays): ``new_phones``,
  ``new_addresses``, ``exam_results``, ``consulta_outcomes``, ``discharge_times``,
  ``new_quartos``.
- Natural keys: ``cpf``, ``cnpj``, ``crm`` (bijections of the id), ``link_pairs``.
- COPY text: ``encode_rows``, ``iter_copy_blocks``, ``encode_column``.
"""

from __future__ import annotations

from loadgen.datagen.chunks import CHUNK_IDS, chunk_rng, generate_piece, iter_pieces
from loadgen.datagen.copy_text import encode_column, encode_rows, iter_copy_blocks
from loadgen.datagen.dates import reference_day
from loadgen.datagen.fields import (
    consulta_outcomes,
    discharge_times,
    exam_results,
    new_addresses,
    new_phones,
    new_quartos,
)
from loadgen.datagen.ids import CPF_SPACE, CRM_SPACE, cnpj, cpf, crm, is_valid_cpf
from loadgen.datagen.rows import (
    Batch,
    LazyBatch,
    ParentIds,
    generate_lazy,
    generate_rows,
    link_pairs,
)
from loadgen.datagen.text import Pool, Text
from loadgen.datagen.vocab import build_vocab

__all__ = [
    "CHUNK_IDS",
    "CPF_SPACE",
    "CRM_SPACE",
    "Batch",
    "LazyBatch",
    "Pool",
    "Text",
    "ParentIds",
    "build_vocab",
    "chunk_rng",
    "cnpj",
    "consulta_outcomes",
    "cpf",
    "crm",
    "discharge_times",
    "encode_column",
    "encode_rows",
    "exam_results",
    "generate_lazy",
    "generate_piece",
    "generate_rows",
    "is_valid_cpf",
    "iter_copy_blocks",
    "iter_pieces",
    "link_pairs",
    "new_addresses",
    "new_phones",
    "new_quartos",
    "reference_day",
]
