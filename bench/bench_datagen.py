"""Data generation: vectorised pacientes (generation + COPY text) vs per-row Faker pt_BR.

Target (issue 2): at least 30x the per-row Faker rate, same machine, same run. The Faker
baseline is what a per-row simulator does: one Faker call per field, one COPY line per row.

    .venv/bin/pytest bench/bench_datagen.py --benchmark-only      # pytest-benchmark
    .venv/bin/python bench/bench_datagen.py                       # side-by-side table + ratio
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from loadgen import datagen, tables

PIECE_ROWS = datagen.CHUNK_IDS  # one seeding piece
FAKER_ROWS = 2_000
NOW = datagen.reference_day()


def vectorised_pacientes(first_id: int = 1) -> int:
    """Generate one piece of pacientes and encode it to COPY text; return bytes produced."""
    batch = datagen.generate_piece(
        "pacientes",
        1,
        first_id,
        first_id + PIECE_ROWS,
        parents=datagen.ParentIds(),
        now=NOW,
        lazy=True,
    )
    blocks = datagen.iter_copy_blocks(batch, tables.PACIENTES.columns, 10_000)
    return sum(len(b) for b in blocks)


def _faker() -> Any:
    from faker import Faker

    fake = Faker("pt_BR")
    fake.seed_instance(1)
    return fake


def faker_pacientes(fake: Any, n: int = FAKER_ROWS) -> int:
    """The per-row way: Faker per field, escape and join per row; return bytes produced."""
    out = []
    for i in range(1, n + 1):
        row = (
            str(i),
            fake.name(),
            fake.date_of_birth(minimum_age=0, maximum_age=100).isoformat(),
            fake.cpf(),
            fake.phone_number(),
            fake.address().replace("\n", ", "),
            fake.date_time_between("-10y", "now").isoformat(sep=" "),
        )
        out.append("\t".join(datagen.copy_text.escape(v) for v in row) + "\n")
    return len("".join(out).encode())


def _rate(fn: Callable[[], int], rows: int, repeat: int) -> float:
    best_s = min(_timed(fn) for _ in range(repeat))
    return rows / best_s


def _timed(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_vectorised_pacientes(benchmark: Any) -> None:
    datagen.build_vocab()
    benchmark.extra_info["rows"] = PIECE_ROWS
    assert benchmark(vectorised_pacientes) > PIECE_ROWS * 100


def test_faker_per_row_pacientes(benchmark: Any) -> None:
    fake = _faker()
    benchmark.extra_info["rows"] = FAKER_ROWS
    assert benchmark.pedantic(faker_pacientes, args=(fake,), rounds=3) > FAKER_ROWS * 100


def main() -> None:
    datagen.build_vocab()
    fake = _faker()
    ours = _rate(vectorised_pacientes, PIECE_ROWS, 7)
    theirs = _rate(lambda: faker_pacientes(fake), FAKER_ROWS, 3)
    print(f"{'pacientes, generation + COPY text':<40}{'rows/s':>12}")
    print(f"{'vectorised (datagen), one core':<40}{ours:>12,.0f}")
    print(f"{'per-row Faker pt_BR, one core':<40}{theirs:>12,.0f}")
    print(f"ratio {ours / theirs:.1f}x (target >= 30x)")


if __name__ == "__main__":
    sys.exit(main())
