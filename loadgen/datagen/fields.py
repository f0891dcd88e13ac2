"""Vectorised field generators shared by the row generators and the stream's update operations.

Every function takes the caller's ``np.random.Generator`` and returns arrays of shape ``(n,)``:
object arrays of ``str`` for text, ``datetime64[s]`` for timestamps. Pure; any process.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt

from loadgen.datagen.dates import DAY_S, epoch_s, to_timestamp
from loadgen.datagen.ids import _digits
from loadgen.datagen.text import Text, obj_array
from loadgen.datagen.vocab import build_vocab

ObjArray = npt.NDArray[np.object_]
Int64Array = npt.NDArray[np.int64]

MOBILE_SHARE = 0.7  # share of phones that are mobile ("(11) 91234-5678"), else landline
CONSULTA_OUTCOMES: tuple[str, ...] = ("realizada", "cancelada", "faltou")
CONSULTA_OUTCOME_PROBS: tuple[float, ...] = (0.75, 0.15, 0.10)


def phones_text(rng: np.random.Generator, ddd: Int64Array) -> Text:
    """Draw Brazilian phone numbers for the given DDDs (area codes), as a lazy text column.

    70 % mobiles ``"(11) 9NNNN-NNNN"`` (15 chars), else landlines ``"(11) [2-5]NNN-NNNN"`` (14).

    Args:
        rng: generator.
        ddd: ``int64`` ``(n,)`` two-digit area codes.
    """
    n = len(ddd)
    is_mobile = rng.random(n) < MOBILE_SHARE
    first = np.where(is_mobile, 9, rng.integers(2, 6, n))
    d = _digits(rng.integers(0, 10**8, n), 8) + 48
    out = np.zeros((n, 15), dtype=np.uint8)
    out[:, 0], out[:, 3], out[:, 4] = ord("("), ord(")"), ord(" ")
    out[:, 1:3] = _digits(np.asarray(ddd, dtype=np.int64), 2) + 48
    out[:, 5] = first + 48
    # mobile: 9 + 4 digits, '-', 4 digits; landline: first + 3 digits, '-', 4 digits, NUL
    mob, land = is_mobile, ~is_mobile
    out[mob, 6:10] = d[mob, :4]
    out[mob, 10] = ord("-")
    out[mob, 11:15] = d[mob, 4:]
    out[land, 6:9] = d[land, :3]
    out[land, 9] = ord("-")
    out[land, 10:14] = d[land, 4:]
    return Text.ascii(out)


def phones(rng: np.random.Generator, ddd: Int64Array) -> ObjArray:
    """Like ``phones_text``, as an object array of ``str`` ``(n,)``."""
    return phones_text(rng, ddd).to_objects()


def city_ddds(rng: np.random.Generator, n: int) -> Int64Array:
    """Draw DDDs weighted by the population of the vocabulary's cities: ``int64`` ``(n,)``."""
    v = build_vocab()
    return v.city_ddd[rng.choice(len(v.city_ddd), n, p=v.city_probs)]


def new_phones(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` new phone numbers (for ``update`` operations): object array of ``str``."""
    return phones_text(rng, city_ddds(rng, n)).to_objects()


def addresses_text(rng: np.random.Generator, n: int) -> tuple[Text, Int64Array]:
    """Draw addresses and their city's DDD.

    Returns:
        ``(endereco, ddd)``: a lazy text column like
        ``"Rua Teixeira, 123 - Vila Nova, Recife - PE, CEP 50123-456"`` (< 200 chars) and the
        ``int64`` DDD of that city, both ``(n,)``.
    """
    v = build_vocab()
    li = rng.integers(0, len(v.localities), n)
    street = v.streets.take(rng.integers(0, len(v.streets), n))
    return street + " - " + v.localities.take(li), v.locality_ddd[li]


def new_addresses(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` new addresses (for ``update`` operations): object array of ``str``."""
    return addresses_text(rng, n)[0].to_objects()


def exam_results(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw ``n`` exam results (``exames.resultado``), weighted toward normal ones."""
    v = build_vocab()
    return v.resultados[rng.choice(len(v.resultados), n, p=v.resultado_probs)]


def consulta_outcomes(rng: np.random.Generator, n: int) -> ObjArray:
    """Draw the next status of ``n`` ``agendada`` consultas: realizada/cancelada/faltou.

    The state machine is agendada -> realizada | cancelada | faltou (terminal states).
    """
    out = obj_array(CONSULTA_OUTCOMES)
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


def digit_strings(rng: np.random.Generator, n: int, groups: tuple[int, ...]) -> Text:
    """Draw random digit strings in space-separated groups, e.g. ``(4, 4, 4, 4)`` for a card."""
    total = sum(groups)
    digits = np.concatenate(
        [_digits(rng.integers(0, 10**8, n), 8) for _ in range((total + 7) // 8)], axis=1
    )[:, :total]
    out = np.full((n, total + len(groups) - 1), ord(" "), dtype=np.uint8)
    src = dst = 0
    for g in groups:
        out[:, dst : dst + g] = digits[:, src : src + g] + 48
        src += g
        dst += g + 1
    return Text.ascii(out)
