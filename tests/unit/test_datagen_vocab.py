"""Vocabulary pools: pt_BR content, determinism, and the JSON cache that skips Faker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from loadgen.datagen import vocab
from loadgen.datagen.text import Pool


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LOADGEN_CACHE_DIR", str(tmp_path))
    vocab.build_vocab.cache_clear()
    yield tmp_path
    vocab.build_vocab.cache_clear()


def _plain(v: vocab.Vocab) -> dict[str, list[object]]:
    out = {}
    for f in vocab.fields(vocab.Vocab):
        value = getattr(v, f.name)
        out[f.name] = value.text.tolist() if isinstance(value, Pool) else value.tolist()
    return out


def test_cache_round_trip_equals_a_fresh_build(cache_dir: Path) -> None:
    built = vocab.build_vocab()
    files = list(cache_dir.glob("vocab-*.json"))
    assert len(files) == 1
    vocab.build_vocab.cache_clear()
    cached = vocab.build_vocab()
    assert cached is not built
    assert _plain(cached) == _plain(built) == _plain(vocab._build())
    assert cached.names.text.dtype == object and cached.city_probs.dtype == np.float64


def test_corrupt_cache_is_rebuilt(cache_dir: Path) -> None:
    vocab.build_vocab()
    (path,) = cache_dir.glob("vocab-*.json")
    path.write_bytes(b'{"names": [1, 2')
    vocab.build_vocab.cache_clear()
    assert len(vocab.build_vocab().names) == vocab.NAME_POOL_SIZE
    assert path.read_bytes().startswith(b'{"names":["')  # rewritten


def test_pools_look_brazilian() -> None:
    v = vocab.build_vocab()
    assert len(v.names) == vocab.NAME_POOL_SIZE and len(set(v.names.text.tolist())) > 10_000
    assert all(len(n.split()) >= 3 for n in v.names.text.tolist()[:500])
    ufs = {c[1] for c in vocab.CITIES}
    assert all(loc.split(", ")[-2][-2:] in ufs for loc in v.localities.text.tolist()[:500])
    assert set(v.locality_ddd.tolist()) <= {c[2] for c in vocab.CITIES}
    assert abs(v.city_probs.sum() - 1) < 1e-9 and abs(v.age_band_probs.sum() - 1) < 1e-9
    for pool in (v.streets, v.localities, v.especialidades, v.tipos_exame, v.resultados):
        assert not any(ch in s for s in pool.text.tolist() for ch in "\t\n\r\\")
