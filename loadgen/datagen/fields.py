"""Vectorised field generators shared by the row generators and the stream's update operations.

Every function takes the caller's ``np.random.Generator`` and returns arrays of shape ``(n,)``:
object arrays of ``str`` for text, ``datetime64[s]`` for timestamps. Pure; any process.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt

from loadgen.datagen.dates import DAY_S, epoch_s, to_timestamp
from loadgen.datagen.ids import _ascii, _digits
from loadgen.datagen.vocab import build_vocab

ObjArray = npt.NDArray[np.object_]
Int64Array = npt.NDArray[np.int64]

MOBILE_SHARE = 0.7  # share of phones that are mobile ("(11) 91234-5678"), else landline
CONSULTA_OUTCOMES: tuple[str, ...] = ("realizada", "cancelada", "faltou")
CONSULTA_OUTCOME_PROBS: tuple[float, ...] = (0.75, 0.15, 0.10)


def phones(rng: np.random.Generator, ddd: Int64Array) -> ObjArray:
    """Draw Brazilian phone numbers for the given DDDs (area codes).

    70 % mobiles ``"(11) 9NNNN-NNNN"`` (15 chars), else landlines ``"(11) [2-5]NNN-NNNN"``.

    Args:
        rng: generator.
        ddd: ``int64`` ``(n,)`` two-digit area codes.

    Returns:
        object array ``(n,)`` of ``str``.
    """
    n = len(ddd)
    is_mobile = rng.random(n) < MOBILE_SHARE
    first = np.where(is_mobile, 9, rng.integers(2, 6, n))
    body = rng.integers(0, 10**8, n)  # 8 digits after the first one (mobiles: 9 + 8 digits)
    d = _digits(body, 8)
    dd = _digits(np.asarray(ddd, dtype=np.int64), 2)
    mob = np.empty((n, 15), dtype=np.int64)
    mob[:, 0], mob[:, 3], mob[:, 4], mob[:, 10] = ord("("), ord(")"), ord(" "), ord("-")
    mob[:, 1:3] = dd + 48
    mob[:, 5] = 48 + 9
    mob[:, 6:10] = d[:, :4] + 48
    mob[:, 11:15] = d[:, 4:] + 48
    land = np.empty((n, 14), dtype=np.int64)
    land[:, 0], land[:, 3], land[:, 4], land[:, 9] = ord("("), ord(")"), ord(" "), ord("-")
    land[:, 1:3] = dd + 48
    land[:, 5] = first + 48
    land[:, 6:9] = d[:, :3] + 48
    land[:, 10:14] = d[:, 4:] + 48
    return np.where(is_mobile, _ascii(mob), _ascii(land))


def city_ddds(rng: np.random.Generator, n: int) -> Int64Array:
    """Draw DDDs weighted by the population of the vocabulary's cities: ``int64`` ``(n,)``."""
    v = build_vocab()
    return v.city_ddd[rng.choice(len(v.city_ddd), n, p=v.city_probs)]


def new_phones(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` new phone numbers (for ``update`` operations): object array of ``str``."""
    return phones(rng, city_ddds(rng, n))


def addresses(rng: np.random.Generator, n: int) -> tuple[ObjArray, Int64Array]:
    """Draw addresses and their city's DDD.

    Returns:
        ``(endereco, ddd)``: object array of ``str`` like
        ``"Rua Teixeira, 123 - Vila Nova, Recife - PE, CEP 50123-456"`` (< 200 chars) and the
        ``int64`` DDD of that city, both ``(n,)``.
    """
    v = build_vocab()
    li = rng.integers(0, len(v.localities), n)
    street = v.streets[rng.integers(0, len(v.streets), n)]
    return street + " - " + v.localities[li], v.locality_ddd[li]


def new_addresses(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` new addresses (for ``update`` operations): object array of ``str``."""
    return addresses(rng, n)[0]


def exam_results(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` exam results (``exames.resultado``), weighted toward normal ones."""
    v = build_vocab()
    return v.resultados[rng.choice(len(v.resultados), n, p=v.resultado_probs)]


def consulta_outcomes(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw the next status of ``n`` ``agendada`` consultas: realizada/cancelada/faltou.

    The state machine is agendada -> realizada | cancelada | faltou (terminal states).
    """
    out = np.empty(len(CONSULTA_OUTCOMES), dtype=object)
    out[:] = CONSULTA_OUTCOMES
    return out[rng.choice(len(out), n, p=np.asarray(CONSULTA_OUTCOME_PROBS))]


def new_quartos(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` room labels (``internacoes.quarto``), e.g. ``"Enf 204-B"``, ``"UTI 07"``."""
    v = build_vocab()
    return v.quartos[rng.integers(0, len(v.quartos), n)]


def length_of_stay_s(rng: np.random.Generator, n: int) -> Int64Array:
    """Draw hospital stays in seconds: gamma-distributed, mean ~4.5 days, at least 2 hours."""
    days = rng.gamma(1.5, 3.0, n)
    return np.maximum((days * DAY_S).astype(np.int64), 2 * 3600)


def discharge_times(
    rng: np.random.Generator, data_entrada: npt.NDArray[np.datetime64], now: datetime
) -> npt.NDArray[np.datetime64]:
    """Draw ``data_saida`` for open internações: entrada + a stay, never after ``now``.

    Args:
        rng: generator.
        data_entrada: ``datetime64`` ``(n,)`` admission instants (UTC), all <= ``now``.
        now: the current instant (naive = UTC).

    Returns:
        ``datetime64[s]`` ``(n,)`` with ``data_entrada <= data_saida <= now``.
    """
    entrada = np.asarray(data_entrada).astype("datetime64[s]").view(np.int64)
    saida = np.minimum(entrada + length_of_stay_s(rng, len(entrada)), epoch_s(now))
    return to_timestamp(np.maximum(saida, entrada))


def digit_strings(rng: np.random.Generator, n: int, groups: tuple[int, ...]) -> ObjArray:
    """Draw random digit strings in space-separated groups, e.g. ``(4, 4, 4, 4)`` for a card."""
    total = sum(groups)
    digits = np.concatenate(
        [_digits(rng.integers(0, 10**8, n), 8) for _ in range((total + 7) // 8)], axis=1
    )[:, :total]
    out = np.full((n, total + len(groups) - 1), ord(" "), dtype=np.int64)
    src = dst = 0
    for g in groups:
        out[:, dst : dst + g] = digits[:, src : src + g] + 48
        src += g
        dst += g + 1
    return _ascii(out)
