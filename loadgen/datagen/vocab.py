"""Vocabularies: pools of pt_BR strings built once per process, sampled by numpy afterwards.

Faker (pt_BR, seeded with the fixed ``VOCAB_SEED``) fills the person and street pools once;
the domain lists (especialidades, exames, motivos, resultados) and the real cities with their
UF, DDD and CEP range are data. Row generators only index these arrays, so no Faker call sits
on the hot path. The pools are the same in every process and every run (fixed seed), which is
what makes row content depend only on (run seed, table, id).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from loadgen.datagen.text import Pool
from loadgen.datagen.vocab_data import (
    AGE_BAND_WEIGHTS,
    CITIES,
    CONVENIO_COBERTURAS,
    CONVENIO_MARCAS,
    CONVENIO_TIPOS,
    ESPECIALIDADES,
    MOTIVOS_CONSULTA,
    MOTIVOS_INTERNACAO,
    RESULTADO_WEIGHTS,
    RESULTADOS,
    TIPOS_EXAME,
)

ObjArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]

VOCAB_SEED = 20_240_501  # fixed: pools must not depend on the run's --seed
NAME_POOL_SIZE = 16_384  # full names combined from Faker's first/last names
STREET_POOL_SIZE = 1_024  # Faker street names
BAIRRO_POOL_SIZE = 512  # Faker bairros
LOCALITY_POOL_SIZE = 8_192  # "bairro, cidade - UF, CEP nnnnn-nnn" entries, with the city's DDD


def _probs(weights: tuple[float, ...] | list[float]) -> FloatArray:
    w = np.asarray(weights, dtype=np.float64)
    return w / w.sum()


def _obj(items: list[str] | tuple[str, ...]) -> ObjArray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def _clean(text: str) -> str:
    # Vocabulary entries never carry COPY specials; the encoder still escapes for any input.
    return re.sub(r"\bIi\b", "II", " ".join(text.split()))


@dataclass(frozen=True)
class Vocab:
    """Pools sampled by the row generators (``Pool``: entries as ``str`` and as COPY bytes)."""

    names: Pool  # "Maria Souza Lima" (NAME_POOL_SIZE)
    name_is_female: npt.NDArray[np.bool_]  # aligned with ``names``
    streets: Pool  # "Rua Teixeira, 123" (STREET_POOL_SIZE * a few house numbers)
    localities: Pool  # "Vila Nova, Recife - PE, CEP 50123-456"
    locality_ddd: Int64Array  # the locality city's DDD, aligned with ``localities``
    city_ddd: Int64Array  # DDD per CITIES entry
    city_probs: FloatArray  # population weights of CITIES, summing to 1
    especialidades: Pool
    tipos_exame: Pool
    resultados: Pool
    resultado_probs: FloatArray
    motivos_consulta: Pool
    motivos_internacao: Pool
    quartos: Pool  # "Enf 204-B", "Apto 312", "UTI 07"
    convenio_nomes: Pool
    convenio_tipos: Pool
    convenio_coberturas: Pool
    age_band_probs: FloatArray  # 20 five-year bands


def _format_cep(values: Int64Array) -> list[str]:
    return [f"{v // 1000:05d}-{v % 1000:03d}" for v in values.tolist()]


@lru_cache(maxsize=1)
def build_vocab() -> Vocab:
    """Return the pools: from the on-disk cache when it matches, else built and cached.

    Built once per process (Faker import + pools: ~0.5 s; from the cache: ~0.05 s). Deterministic:
    fixed Faker and numpy seeds, and the cache key covers this module's source and the Faker
    and numpy versions. The cache is JSON (no pickle); any problem reading or writing it just
    means building again.
    """
    path = _cache_path()
    if path is not None:
        try:
            return _from_json(orjson.loads(path.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    vocab = _build()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(orjson.dumps(_to_json(vocab)))
            os.replace(tmp, path)  # atomic: concurrent workers never read half a file
        except OSError:
            pass
    return vocab


def _cache_path() -> Path | None:
    """``$LOADGEN_CACHE_DIR`` (``off`` disables), else ``$XDG_CACHE_HOME/loadgen``."""
    setting = os.environ.get("LOADGEN_CACHE_DIR")
    if setting == "off":
        return None
    base = (
        Path(setting)
        if setting
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loadgen"
    )
    key = hashlib.sha256(Path(__file__).read_bytes())
    key.update((Path(__file__).parent / "vocab_data.py").read_bytes())
    key.update(f"{importlib.metadata.version('faker')}|{np.__version__}".encode())
    return base / f"vocab-{key.hexdigest()[:20]}.json"


_POOL_FIELDS = tuple(f.name for f in fields(Vocab) if f.type in ("Pool", Pool))


def _to_json(v: Vocab) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    for f in fields(Vocab):
        value = getattr(v, f.name)
        out[f.name] = value.text.tolist() if isinstance(value, Pool) else value.tolist()
    return out


def _from_json(doc: dict[str, list[object]]) -> Vocab:
    kwargs: dict[str, object] = {}
    for f in fields(Vocab):
        items = doc[f.name]
        if f.name in _POOL_FIELDS:
            kwargs[f.name] = Pool(items)  # type: ignore[arg-type]
        elif f.name == "name_is_female":
            kwargs[f.name] = np.array(items, dtype=bool)
        elif f.name.endswith("_probs"):
            kwargs[f.name] = np.array(items, dtype=np.float64)
        else:
            kwargs[f.name] = np.array(items, dtype=np.int64)
    return Vocab(**kwargs)  # type: ignore[arg-type]


def _build() -> Vocab:
    """Build the pools with Faker (pt_BR, ``VOCAB_SEED``) and numpy (same seed)."""
    from faker import Faker  # imported here: only vocabulary building needs it

    fake = Faker("pt_BR")
    fake.seed_instance(VOCAB_SEED)
    rng = np.random.default_rng(VOCAB_SEED)
    person = fake.provider("faker.providers.person")
    assert person is not None
    female = _obj(sorted(set(person.first_names_female)))  # type: ignore[attr-defined]
    male = _obj(sorted(set(person.first_names_male)))  # type: ignore[attr-defined]
    last = _obj(sorted(set(person.last_names)))  # type: ignore[attr-defined]
    is_female = rng.random(NAME_POOL_SIZE) < 0.52
    first = np.where(
        is_female,
        female[rng.integers(0, len(female), NAME_POOL_SIZE)],
        male[rng.integers(0, len(male), NAME_POOL_SIZE)],
    )
    l1 = last[rng.integers(0, len(last), NAME_POOL_SIZE)]
    l2 = last[rng.integers(0, len(last), NAME_POOL_SIZE)]
    names = first + " " + l1 + " " + l2

    street_names = _obj(sorted({_clean(fake.street_name()) for _ in range(STREET_POOL_SIZE)}))
    numbers = rng.integers(1, 3_000, STREET_POOL_SIZE * 4)
    streets = _obj(
        [
            f"{s}, {n}"
            for s, n in zip(
                street_names[rng.integers(0, len(street_names), len(numbers))].tolist(),
                numbers.tolist(),
                strict=True,
            )
        ]
    )
    bairros = _obj(sorted({_clean(fake.bairro()) for _ in range(BAIRRO_POOL_SIZE)}))

    city_probs = _probs([c[5] for c in CITIES])
    city_idx = rng.choice(len(CITIES), LOCALITY_POOL_SIZE, p=city_probs)
    cep_start = np.array([c[3] for c in CITIES], dtype=np.int64)[city_idx]
    cep_count = np.array([c[4] for c in CITIES], dtype=np.int64)[city_idx]
    ceps = _format_cep(cep_start + rng.integers(0, cep_count))
    city_uf = [f"{CITIES[i][0]} - {CITIES[i][1]}" for i in city_idx.tolist()]
    bairro_pick = bairros[rng.integers(0, len(bairros), LOCALITY_POOL_SIZE)].tolist()
    localities = _obj(
        [f"{b}, {c}, CEP {z}" for b, c, z in zip(bairro_pick, city_uf, ceps, strict=True)]
    )
    city_ddd = np.array([c[2] for c in CITIES], dtype=np.int64)

    quartos = [f"Enf {a}{r:02d}-{b}" for a in range(1, 9) for r in range(1, 31) for b in "AB"]
    quartos += [f"Apto {a}{r:02d}" for a in range(1, 9) for r in range(1, 21)]
    quartos += [f"UTI {r:02d}" for r in range(1, 41)]

    convenio_nomes = [f"{fake.last_name()} {m}" for m in CONVENIO_MARCAS for _ in range(8)]
    return Vocab(
        names=Pool(names.tolist()),
        name_is_female=is_female,
        streets=Pool(streets.tolist()),
        localities=Pool(localities.tolist()),
        locality_ddd=city_ddd[city_idx],
        city_ddd=city_ddd,
        city_probs=city_probs,
        especialidades=Pool(ESPECIALIDADES),
        tipos_exame=Pool(TIPOS_EXAME),
        resultados=Pool(RESULTADOS),
        resultado_probs=_probs(RESULTADO_WEIGHTS),
        motivos_consulta=Pool(MOTIVOS_CONSULTA),
        motivos_internacao=Pool(MOTIVOS_INTERNACAO),
        quartos=Pool(quartos),
        convenio_nomes=Pool(sorted(set(convenio_nomes))),
        convenio_tipos=Pool(CONVENIO_TIPOS),
        convenio_coberturas=Pool(CONVENIO_COBERTURAS),
        age_band_probs=_probs(AGE_BAND_WEIGHTS),
    )
