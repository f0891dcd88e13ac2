"""Pure parts of the scenarios: change splits, incompressible text, before-image rules."""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest

from loadgen.ledger.changes import RowChange
from loadgen.scenarios.recorder import Identity, Recorder
from loadgen.scenarios.toast import incompressible
from loadgen.scenarios.volume import split_changes


@pytest.mark.parametrize("total", [10, 11, 2_000, 99_999, 100_000])
def test_split_changes_adds_up(total: int) -> None:
    parts = split_changes(total)
    assert sum(parts) == total and all(p >= 1 for p in parts)
    events, _, _, updates, deletes = parts
    assert updates + deletes <= events  # both act on rows the same transaction inserted


def test_incompressible_text_stays_over_the_toast_threshold() -> None:
    text = incompressible(random.Random(1), 6_000)
    assert len(text) == 6_000 and text.isascii()
    assert len(zlib.compress(text.encode(), 9)) > 4_000  # pglz does worse than zlib


def _recorder(kind: str, columns: tuple[str, ...]) -> Recorder:
    rec = Recorder(None, "replica-identity")  # type: ignore[arg-type]  # no query is made
    rec._identity["t"] = Identity(kind, columns)
    return rec


OLD: dict[str, Any] = {"id": "1", "codigo": "A", "nome": "x"}


@pytest.mark.parametrize(
    ("kind", "cols", "new", "want"),
    [
        ("d", ("id",), {**OLD, "nome": "y"}, None),  # key unchanged: no old tuple
        ("d", ("id",), {**OLD, "id": "2"}, {"id": "1"}),
        ("d", ("id",), None, {"id": "1"}),  # delete: always the key
        ("i", ("codigo",), {**OLD, "id": "2"}, None),  # id is not this identity's key
        ("i", ("codigo",), {**OLD, "codigo": "B"}, {"codigo": "A"}),
        ("f", ("id", "codigo", "nome"), {**OLD, "nome": "y"}, OLD),
        ("f", ("id", "codigo", "nome"), None, OLD),
        ("n", (), None, None),
    ],
)
def test_before_image_follows_the_replica_identity(
    kind: str, cols: tuple[str, ...], new: dict[str, Any] | None, want: dict[str, Any] | None
) -> None:
    assert _recorder(kind, cols).before_image("t", OLD, new) == want


def test_row_change_optional_fields_keep_old_callers_working() -> None:
    ch = RowChange("pacientes", "u", 1, {"id": "1"}, "update_paciente")
    assert ch.old_pk is None and ch.before is None
