"""Natural keys: check digits (checked by an independent implementation) and uniqueness."""

from __future__ import annotations

import re

import numpy as np
import pytest

from loadgen.datagen import ids

REAL_UFS = {
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA", "PB",
    "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
}  # fmt: skip


def reference_cpf_ok(text: str) -> bool:
    """Receita Federal's CPF rule, written from the published description (not from ids.py)."""
    if not re.fullmatch(r"\d{3}\.\d{3}\.\d{3}-\d{2}", text):
        return False
    d = [int(c) for c in text if c.isdigit()]
    if len(set(d)) == 1:
        return False
    s1 = sum(d[i] * (10 - i) for i in range(9))
    dv1 = (s1 * 10) % 11 % 10
    s2 = sum(d[i] * (11 - i) for i in range(10))
    dv2 = (s2 * 10) % 11 % 10
    return d[9] == dv1 and d[10] == dv2


def reference_cnpj_ok(text: str) -> bool:
    """CNPJ rule from the published description: weights 5..2,9..2 then 6..2,9..2."""
    if not re.fullmatch(r"\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}", text):
        return False
    d = [int(c) for c in text if c.isdigit()]
    w1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    w2 = [6, *w1]
    r1 = sum(a * b for a, b in zip(d[:12], w1, strict=True)) % 11
    r2 = sum(a * b for a, b in zip(d[:13], w2, strict=True)) % 11
    return d[12] == (0 if r1 < 2 else 11 - r1) and d[13] == (0 if r2 < 2 else 11 - r2)


def _all_distinct(values: np.ndarray) -> bool:
    ordered = np.sort(values)  # (np.unique is far slower on numpy 2.4 for millions of ints)
    return bool((ordered[1:] != ordered[:-1]).all())


def _sample_ids(space: int, n: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(3)
    edges = np.array([1, 2, 3, space - 1, space], dtype=np.int64)
    return np.concatenate((np.arange(1, 5_000), rng.integers(1, space + 1, n), edges))


def test_reference_checkers_know_real_documents() -> None:
    assert reference_cpf_ok("529.982.247-25")  # the usual textbook example
    assert not reference_cpf_ok("529.982.247-24")
    assert not reference_cpf_ok("111.111.111-11")
    assert reference_cnpj_ok("11.222.333/0001-81")
    assert not reference_cnpj_ok("11.222.333/0001-82")


def test_cpf_check_digits_and_format() -> None:
    values = ids.cpf(_sample_ids(ids.CPF_SPACE))
    bad = [v for v in values.tolist() if not reference_cpf_ok(v)]
    assert bad == []
    assert ids.is_valid_cpf("529.982.247-25") and not ids.is_valid_cpf("000.000.000-00")


def test_cpf_unique_over_a_large_id_range() -> None:
    base = ids.cpf_base(np.arange(1, 3_000_001, dtype=np.int64))
    assert _all_distinct(base)
    assert base.min() >= 1 and base.max() <= 999_999_998
    repdigits = np.arange(0, 10, dtype=np.int64) * 111_111_111
    assert not np.isin(base, repdigits).any()
    text = ids.cpf(np.arange(1, 200_001, dtype=np.int64))
    assert len(set(text.tolist())) == 200_000


def test_cpf_bijection_holds_at_the_top_of_the_space() -> None:
    top = np.arange(ids.CPF_SPACE - 2_000_000, ids.CPF_SPACE + 1, dtype=np.int64)
    low = np.arange(1, 2_000_001, dtype=np.int64)
    both = np.concatenate((ids.cpf_base(top), ids.cpf_base(low)))
    assert _all_distinct(both)


@pytest.mark.parametrize("bad", [0, -5, ids.CPF_SPACE + 1])
def test_cpf_rejects_ids_outside_its_space(bad: int) -> None:
    with pytest.raises(ValueError, match="paciente ids"):
        ids.cpf(np.array([1, bad], dtype=np.int64))


def test_cnpj_check_digits_and_uniqueness() -> None:
    values = ids.cnpj(_sample_ids(ids.CNPJ_SPACE)).tolist()
    assert [v for v in values if not reference_cnpj_ok(v)] == []
    assert all(v[11:15] == "0002" for v in values)  # never a lookup's /0001 headquarters
    many = ids.cnpj(np.arange(1, 100_001, dtype=np.int64))
    assert len(set(many.tolist())) == 100_000


def test_crm_real_uf_format_and_uniqueness_over_its_whole_space() -> None:
    uf_idx, number = ids.crm_parts(np.arange(1, ids.CRM_SPACE + 1, dtype=np.int64))
    assert set(ids.CRM_UFS.tolist()) <= REAL_UFS
    key = uf_idx * 10_000_000 + number
    assert key.size == ids.CRM_SPACE and _all_distinct(key)
    assert number.min() >= 1 and number.max() <= 999_999
    text = ids.crm(np.arange(1, 5_001, dtype=np.int64)).tolist()
    assert all(re.fullmatch(r"CRM/[A-Z]{2} [1-9]\d{0,5}", t) for t in text)
    assert {t[4:6] for t in text} <= REAL_UFS
    assert sum(t.startswith("CRM/SP") for t in text) > sum(t.startswith("CRM/AC") for t in text)
