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

ObjArray = npt.NDArray[np.object_]
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]

VOCAB_SEED = 20_240_501  # fixed: pools must not depend on the run's --seed
NAME_POOL_SIZE = 16_384  # full names combined from Faker's first/last names
STREET_POOL_SIZE = 1_024  # Faker street names
BAIRRO_POOL_SIZE = 512  # Faker bairros
LOCALITY_POOL_SIZE = 8_192  # "bairro, cidade - UF, CEP nnnnn-nnn" entries, with the city's DDD

# Real cities: (name, UF, DDD, first CEP, CEP count, population in millions as weight).
CITIES: tuple[tuple[str, str, int, int, int, float], ...] = (
    ("São Paulo", "SP", 11, 1_000_000, 4_999_999, 11.5),
    ("Rio de Janeiro", "RJ", 21, 20_000_000, 3_799_999, 6.2),
    ("Brasília", "DF", 61, 70_000_000, 2_799_999, 2.8),
    ("Salvador", "BA", 71, 40_000_000, 2_599_999, 2.4),
    ("Fortaleza", "CE", 85, 60_000_000, 1_599_999, 2.4),
    ("Belo Horizonte", "MG", 31, 30_000_000, 1_999_999, 2.3),
    ("Manaus", "AM", 92, 69_000_000, 99_999, 2.1),
    ("Curitiba", "PR", 41, 80_000_000, 2_999_999, 1.8),
    ("Recife", "PE", 81, 50_000_000, 2_999_999, 1.5),
    ("Goiânia", "GO", 62, 74_000_000, 899_999, 1.4),
    ("Porto Alegre", "RS", 51, 90_000_000, 1_999_999, 1.3),
    ("Belém", "PA", 91, 66_000_000, 999_999, 1.3),
    ("Guarulhos", "SP", 11, 7_000_000, 399_999, 1.3),
    ("Campinas", "SP", 19, 13_000_000, 139_999, 1.1),
    ("São Luís", "MA", 98, 65_000_000, 109_999, 1.0),
    ("Maceió", "AL", 82, 57_000_000, 99_999, 1.0),
    ("Campo Grande", "MS", 67, 79_000_000, 124_999, 0.9),
    ("Teresina", "PI", 86, 64_000_000, 99_999, 0.87),
    ("João Pessoa", "PB", 83, 58_000_000, 99_999, 0.83),
    ("Natal", "RN", 84, 59_000_000, 161_999, 0.75),
    ("São José dos Campos", "SP", 12, 12_200_000, 48_999, 0.7),
    ("Ribeirão Preto", "SP", 16, 14_000_000, 114_999, 0.7),
    ("Uberlândia", "MG", 34, 38_400_000, 15_999, 0.7),
    ("Sorocaba", "SP", 15, 18_000_000, 109_999, 0.7),
    ("Cuiabá", "MT", 65, 78_000_000, 109_999, 0.65),
    ("Joinville", "SC", 47, 89_200_000, 39_999, 0.6),
    ("Feira de Santana", "BA", 75, 44_000_000, 99_999, 0.6),
    ("Aracaju", "SE", 79, 49_000_000, 99_999, 0.6),
    ("Londrina", "PR", 43, 86_000_000, 99_999, 0.55),
    ("Juiz de Fora", "MG", 32, 36_000_000, 99_999, 0.54),
    ("Florianópolis", "SC", 48, 88_000_000, 99_999, 0.54),
    ("Niterói", "RJ", 21, 24_000_000, 399_999, 0.48),
    ("Porto Velho", "RO", 69, 76_800_000, 34_999, 0.46),
    ("Caxias do Sul", "RS", 54, 95_000_000, 124_999, 0.46),
    ("Macapá", "AP", 96, 68_900_000, 14_999, 0.44),
    ("Santos", "SP", 13, 11_000_000, 99_999, 0.42),
    ("Boa Vista", "RR", 95, 69_300_000, 39_999, 0.41),
    ("Rio Branco", "AC", 68, 69_900_000, 23_999, 0.36),
    ("Vitória", "ES", 27, 29_000_000, 99_999, 0.32),
    ("Palmas", "TO", 63, 77_000_000, 270_999, 0.3),
)

ESPECIALIDADES: tuple[str, ...] = (
    "Clínica Médica",
    "Cardiologia",
    "Pediatria",
    "Ginecologia e Obstetrícia",
    "Ortopedia e Traumatologia",
    "Cirurgia Geral",
    "Anestesiologia",
    "Dermatologia",
    "Neurologia",
    "Psiquiatria",
    "Oftalmologia",
    "Otorrinolaringologia",
    "Endocrinologia",
    "Gastroenterologia",
    "Urologia",
    "Nefrologia",
    "Pneumologia",
    "Reumatologia",
    "Oncologia Clínica",
    "Infectologia",
    "Geriatria",
    "Hematologia",
    "Angiologia",
    "Radiologia e Diagnóstico por Imagem",
    "Medicina de Família e Comunidade",
    "Medicina Intensiva",
)
TIPOS_EXAME: tuple[str, ...] = (
    "Hemograma completo",
    "Glicemia de jejum",
    "Hemoglobina glicada (HbA1c)",
    "Colesterol total e frações",
    "Triglicerídeos",
    "Creatinina",
    "Ureia",
    "TSH",
    "T4 livre",
    "TGO/TGP",
    "Urina tipo 1",
    "Urocultura",
    "PSA total",
    "Vitamina D",
    "Ferritina",
    "Proteína C reativa",
    "Raio-X de tórax",
    "Eletrocardiograma",
    "Ecocardiograma",
    "Ultrassonografia abdominal",
    "Tomografia de crânio",
    "Ressonância magnética de joelho",
    "Mamografia",
    "Densitometria óssea",
    "Colonoscopia",
    "Endoscopia digestiva alta",
    "Teste ergométrico",
    "Holter 24 horas",
    "Papanicolau",
    "Sorologia para dengue",
)
RESULTADOS: tuple[str, ...] = (
    "Normal",
    "Dentro dos valores de referência",
    "Sem alterações significativas",
    "Limítrofe - repetir em 90 dias",
    "Alterado - repetir em 30 dias",
    "Alterado - encaminhar ao especialista",
    "Alterado - iniciar tratamento",
    "Inconclusivo - nova coleta necessária",
    "Negativo",
    "Positivo - notificar",
    "Discreta alteração sem significado clínico",
    "Compatível com a idade",
)
RESULTADO_WEIGHTS: tuple[float, ...] = (30, 20, 12, 8, 6, 5, 3, 2, 6, 1, 5, 2)
MOTIVOS_CONSULTA: tuple[str, ...] = (
    "Consulta de rotina",
    "Retorno",
    "Check-up anual",
    "Resultado de exames",
    "Renovação de receita",
    "Acompanhamento de hipertensão",
    "Acompanhamento de diabetes",
    "Dor torácica",
    "Cefaleia persistente",
    "Febre e tosse",
    "Dor lombar",
    "Dor abdominal",
    "Tontura",
    "Falta de ar",
    "Dor no joelho",
    "Lesão de pele",
    "Ansiedade",
    "Insônia",
    "Pré-natal",
    "Puericultura",
    "Avaliação pré-operatória",
    "Palpitações",
    "Alergia",
    "Infecção urinária",
    "Dor de garganta",
)
MOTIVOS_INTERNACAO: tuple[str, ...] = (
    "Pneumonia",
    "Insuficiência cardíaca descompensada",
    "Infarto agudo do miocárdio",
    "AVC isquêmico",
    "Colecistectomia eletiva",
    "Fratura de fêmur",
    "Apendicite aguda",
    "Parto normal",
    "Cesariana",
    "Sepse",
    "Crise hipertensiva",
    "Cetoacidose diabética",
    "COVID-19",
    "Dengue com sinais de alarme",
    "Pielonefrite",
    "DPOC exacerbado",
    "Observação pós-operatória",
    "Politrauma - acidente de trânsito",
    "Bronquiolite",
    "Hérnia inguinal - cirurgia eletiva",
)
CONVENIO_TIPOS: tuple[str, ...] = ("privado", "empresarial", "publico")
CONVENIO_COBERTURAS: tuple[str, ...] = (
    "Nacional - ambulatorial e hospitalar",
    "Regional - ambulatorial",
    "Nacional - hospitalar com obstetrícia",
    "Regional - hospitalar",
    "Nacional - referência",
)
CONVENIO_MARCAS: tuple[str, ...] = (
    "Vida",
    "Saúde",
    "Bem-Estar",
    "Cuidar",
    "Mais Saúde",
    "Família",
    "Integral",
    "Plena",
)
# Age distribution: 5-year bands 0-4 .. 95-99, share of Brazil's population (IBGE 2022, rounded).
AGE_BAND_WEIGHTS: tuple[float, ...] = (
    6.0,
    6.3,
    6.6,
    7.0,
    7.5,
    7.6,
    7.8,
    8.0,
    7.6,
    6.8,
    6.2,
    5.8,
    5.0,
    4.0,
    3.0,
    2.0,
    1.3,
    0.7,
    0.3,
    0.1,
)


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
