"""Natural keys by construction: CPF, CNPJ and CRM as bijections of the row id, with check digits.

Each key is ``format(permute(id))`` where ``permute`` is a keyed affine permutation
``x -> (A*x + B) mod M`` of the key's number space (a bijection because ``gcd(A, M) == 1``).
The keys ``A``/``B`` are fixed constants, NOT the run seed: CPF(id) is one function for every
seed run, ``--append`` and the stream, so distinct ids can never give the same CPF/CRM and no
collision-retry loop is needed anywhere.

Check-digit algorithms: Receita Federal's modulo-11 schemes (CPF weights 10..2 then 11..2;
CNPJ weights 5,4,3,2,9..2 then 6,5,4,3,2,9..2; remainder < 2 gives 0, else 11 - remainder).
"""

from __future__ import annotations

from math import gcd

import numpy as np
import numpy.typing as npt

from loadgen.datagen.text import Text

Int64Array = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]

# CPF: 9-digit bases minus the 10 repdigits (000000000, 111111111, ...), which validators reject.
_CPF_REPDIGIT_STEP = 111_111_111
CPF_SPACE = 10**9 - 10  # number of usable bases; also the largest paciente id with a CPF
_CPF_A = 613_651_349  # prime, coprime with CPF_SPACE (asserted below)
_CPF_B = 271_828_182
assert gcd(_CPF_A, CPF_SPACE) == 1

# CNPJ: 8-digit root, branch 0002 (so a generated CNPJ never equals the headquarters "/0001"
# CNPJs of the 12 lookup convenios in sql/03), then 2 check digits.
CNPJ_SPACE = 10**8
CNPJ_BRANCH = 2
_CNPJ_A = 48_271_109
_CNPJ_B = 31_415_926
assert gcd(_CNPJ_A, CNPJ_SPACE) == 1

# CRM: UF + number. Each UF gets a number range sized by its share of Brazil's physicians
# (CFM, Demografia Médica 2023, rounded); SP's range is the full 6 digits.
CRM_UF_WEIGHTS: dict[str, float] = {
    "SP": 28.0,
    "RJ": 11.5,
    "MG": 10.5,
    "RS": 6.5,
    "PR": 5.9,
    "BA": 4.8,
    "SC": 3.8,
    "PE": 3.5,
    "GO": 3.1,
    "DF": 2.8,
    "CE": 2.8,
    "ES": 2.1,
    "PA": 1.8,
    "PB": 1.5,
    "MA": 1.3,
    "MT": 1.3,
    "RN": 1.2,
    "MS": 1.2,
    "AM": 1.2,
    "AL": 1.0,
    "PI": 1.0,
    "SE": 0.8,
    "TO": 0.6,
    "RO": 0.6,
    "AC": 0.3,
    "AP": 0.3,
    "RR": 0.3,
}
CRM_UFS = np.array(list(CRM_UF_WEIGHTS), dtype=object)
_CRM_CAPACITY = np.array(
    [max(1_000, int(w / 28.0 * 999_999)) for w in CRM_UF_WEIGHTS.values()], dtype=np.int64
)
_CRM_START = np.concatenate(([0], np.cumsum(_CRM_CAPACITY)[:-1])).astype(np.int64)
_CRM_UF_CODES = np.frombuffer("".join(CRM_UF_WEIGHTS).encode(), dtype=np.uint8).reshape(-1, 2)
CRM_SPACE = int(_CRM_CAPACITY.sum())  # largest medico id with a CRM
_CRM_A = next(a for a in range(1_299_709, 10**7, 2) if gcd(a, CRM_SPACE) == 1)
_CRM_B = 1_618_033


def _check_ids(ids: Int64Array, space: int, what: str) -> Int64Array:
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and (int(ids.min()) < 1 or int(ids.max()) > space):
        raise ValueError(f"{what} ids must be in 1..{space}, got {ids.min()}..{ids.max()}")
    return ids


def _digits(values: Int64Array, width: int) -> npt.NDArray[np.int64]:
    """Split non-negative ints into decimal digits: shape ``(n, width)``, most significant first."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (values[:, None] // powers[None, :]) % 10


def _mod11_digit(digits: npt.NDArray[np.int64], weights: npt.NDArray[np.int64]) -> Int64Array:
    rem = (digits * weights[None, :]).sum(axis=1) % 11
    return np.where(rem < 2, 0, 11 - rem).astype(np.int64)


def _ascii(matrix: npt.NDArray[np.int64]) -> ObjArray:
    """Turn an ``(n, w)`` matrix of ASCII codes into an object array of ``str``."""
    width = matrix.shape[1]
    as_bytes = np.ascontiguousarray(matrix, dtype=np.uint8).view(f"S{width}").ravel()
    return as_bytes.astype(f"U{width}").astype(object)


def cpf_base(ids: Int64Array) -> Int64Array:
    """Return the 9-digit CPF base of each paciente id (a bijection of ``1..CPF_SPACE``).

    Args:
        ids: ``int64`` array of shape ``(n,)`` with values in ``1..CPF_SPACE``.

    Returns:
        ``int64`` array ``(n,)`` of bases in ``1..999_999_998`` with no repdigit base.

    Raises:
        ValueError: an id is out of range.
    """
    ids = _check_ids(ids, CPF_SPACE, "paciente")
    rank = (_CPF_A * (ids - 1) + _CPF_B) % CPF_SPACE
    # rank -> rank-th non-repdigit base: skip 0, then step over each repdigit in ascending order.
    base = rank + 1
    for d in range(1, 10):
        base += base >= d * _CPF_REPDIGIT_STEP
    return base


def cpf_digits(ids: Int64Array) -> npt.NDArray[np.int64]:
    """Return the 11 CPF digits (base + 2 check digits) per id: ``int64`` ``(n, 11)``."""
    base = _digits(cpf_base(ids), 9)
    dv1 = _mod11_digit(base, np.arange(10, 1, -1, dtype=np.int64))
    with_dv1 = np.concatenate((base, dv1[:, None]), axis=1)
    dv2 = _mod11_digit(with_dv1, np.arange(11, 1, -1, dtype=np.int64))
    return np.concatenate((with_dv1, dv2[:, None]), axis=1)


def cpf_text(ids: Int64Array) -> Text:
    """Formatted CPFs (``"123.456.789-09"``) as a lazy text column (see ``cpf``)."""
    d = cpf_digits(ids)
    out = np.empty((len(d), 14), dtype=np.uint8)
    out[:, [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13]] = d + 48
    out[:, [3, 7]] = ord(".")
    out[:, 11] = ord("-")
    return Text.ascii(out)


def cpf(ids: Int64Array) -> ObjArray:
    """Return formatted CPFs (``"123.456.789-09"``) for paciente ids, unique per id.

    Args:
        ids: ``int64`` ``(n,)`` in ``1..CPF_SPACE``.

    Returns:
        object array ``(n,)`` of ``str`` (14 chars).
    """
    return cpf_text(ids).to_objects()


def cnpj_digits(ids: Int64Array) -> npt.NDArray[np.int64]:
    """Return the 14 CNPJ digits per id (root, branch 0002, 2 check digits): ``(n, 14)``."""
    ids = _check_ids(ids, CNPJ_SPACE, "convenio")
    root = (_CNPJ_A * (ids - 1) + _CNPJ_B) % CNPJ_SPACE
    base = np.concatenate(
        (_digits(root, 8), np.broadcast_to(_digits(np.array([CNPJ_BRANCH]), 4), (len(root), 4))),
        axis=1,
    )
    w1 = np.array([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], dtype=np.int64)
    dv1 = _mod11_digit(base, w1)
    with_dv1 = np.concatenate((base, dv1[:, None]), axis=1)
    dv2 = _mod11_digit(with_dv1, np.concatenate(([6], w1)))
    return np.concatenate((with_dv1, dv2[:, None]), axis=1)


def cnpj_text(ids: Int64Array) -> Text:
    """Formatted CNPJs (``"12.345.678/0002-95"``) as a lazy text column (see ``cnpj``)."""
    d = cnpj_digits(ids)
    out = np.empty((len(d), 18), dtype=np.uint8)
    out[:, [0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 16, 17]] = d + 48
    out[:, [2, 6]] = ord(".")
    out[:, 10] = ord("/")
    out[:, 15] = ord("-")
    return Text.ascii(out)


def cnpj(ids: Int64Array) -> ObjArray:
    """Return formatted CNPJs (``"12.345.678/0002-95"``) for convenio ids, unique per id."""
    return cnpj_text(ids).to_objects()


def left_digits(values: Int64Array, width: int) -> npt.NDArray[np.uint8]:
    """ASCII digits of non-negative ints, left-aligned and NUL-padded: ``uint8`` ``(n, width)``."""
    values = np.asarray(values, dtype=np.int64)
    num = np.ones(len(values), dtype=np.int64)
    for k in range(1, width):
        num += values >= 10**k
    pos = np.arange(width, dtype=np.int64)[None, :]
    power = 10 ** np.clip(num[:, None] - 1 - pos, 0, None)
    out = (48 + (values[:, None] // power) % 10).astype(np.uint8)
    out[pos >= num[:, None]] = 0
    return out


def crm_parts(ids: Int64Array) -> tuple[Int64Array, Int64Array]:
    """Return ``(uf_index, number)`` of each medico's CRM: ``int64`` index into ``CRM_UFS``
    and ``int64`` number >= 1 (at most 6 digits)."""
    ids = _check_ids(ids, CRM_SPACE, "medico")
    v = (_CRM_A * (ids - 1) + _CRM_B) % CRM_SPACE
    uf_idx = np.searchsorted(_CRM_START, v, side="right") - 1
    return uf_idx, v - _CRM_START[uf_idx] + 1


def crm_text(ids: Int64Array) -> Text:
    """CRMs (``"CRM/SP 123456"``) as a lazy text column (see ``crm``)."""
    uf_idx, number = crm_parts(ids)
    out = np.zeros((len(uf_idx), 13), dtype=np.uint8)
    out[:, :4] = np.frombuffer(b"CRM/", dtype=np.uint8)
    out[:, 4:6] = _CRM_UF_CODES[uf_idx]
    out[:, 6] = ord(" ")
    out[:, 7:] = left_digits(number, 6)
    return Text.ascii(out)


def crm(ids: Int64Array) -> ObjArray:
    """Return CRMs (``"CRM/SP 123456"``) for medico ids, unique per id (ids in ``1..CRM_SPACE``)."""
    return crm_text(ids).to_objects()


def is_valid_cpf(text: str) -> bool:
    """Check a formatted or bare CPF's check digits (scalar helper for checks and tests)."""
    digits = [int(c) for c in text if c.isdigit()]
    if len(digits) != 11 or len(set(digits)) == 1:
        return False
    for n in (9, 10):
        rem = sum(d * w for d, w in zip(digits[:n], range(n + 1, 1, -1), strict=True)) % 11
        if digits[n] != (0 if rem < 2 else 11 - rem):
            return False
    return True
