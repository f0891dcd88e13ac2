"""toast-unchanged: large values stored out of line, then updates that leave them alone."""

from __future__ import annotations

import base64
import random

from psycopg import sql
from psycopg.types.json import Jsonb

from loadgen.scenarios.base import Context, Scenario

TABLE = "cdc_laudos"
_NUM_ATTACHMENTS = 8
_NUM_MARKERS = 12


def incompressible(rng: random.Random, num_chars: int) -> str:
    """Base64 of random bytes: ``num_chars`` characters pglz cannot shrink much."""
    raw = rng.randbytes(num_chars * 3 // 4 + 3)
    return base64.b64encode(raw).decode("ascii")[:num_chars]


def _large_values(rng: random.Random, nbytes: int) -> dict[str, object]:
    laudo = "LAUDO DE RESSONÂNCIA MAGNÉTICA — conclusão: " + incompressible(rng, nbytes)
    part = max(nbytes // _NUM_ATTACHMENTS, 300)
    anexos = {
        "imagens": [
            {"seq": i, "dados": incompressible(rng, part)} for i in range(_NUM_ATTACHMENTS)
        ],
        "observação": "séries axiais T1/T2",
    }
    marcadores = [
        incompressible(rng, max(nbytes // _NUM_MARKERS, 200)) for _ in range(_NUM_MARKERS)
    ]
    return {"laudo": laudo, "anexos": Jsonb(anexos), "marcadores": marcadores}


def run_toast_unchanged(ctx: Context) -> None:
    """Insert two laudos with large text, jsonb and text[]; update only their small columns.

    Then rewrite the large text once (sent in full), update small columns again, and delete
    the second laudo right after a small-column update.
    """
    rec = ctx.rec
    rng = random.Random()
    nbytes = ctx.options.toast_bytes
    now = sql.SQL("now()")
    with rec.txn() as t:
        first = t.insert(
            TABLE,
            {
                "exame": "Ressonância de crânio",
                "status": "preliminar",
                **_large_values(rng, nbytes),
            },
        )
        second = t.insert(
            TABLE,
            {"exame": "Tomografia de tórax", "status": "preliminar", **_large_values(rng, nbytes)},
        )
    pk1, pk2 = int(first["id"]), int(second["id"])  # type: ignore[arg-type]
    for revisao in (1, 2, 3):  # small columns only: the server omits the TOASTed ones
        with rec.txn() as t:
            t.update(TABLE, pk1, {"revisao": revisao, "status": "revisado", "atualizado_em": now})
    with rec.txn() as t:  # the large value itself changes: sent in full
        t.update(TABLE, pk1, {"laudo": _large_values(rng, nbytes)["laudo"], "revisao": 4})
    with rec.txn() as t:  # two updates of one row in one transaction, small columns only
        t.update(TABLE, pk1, {"status": "assinado"})
        t.update(TABLE, pk1, {"revisao": 5, "atualizado_em": now})
    with rec.txn() as t:
        t.update(TABLE, pk2, {"status": "cancelado"})
        t.delete(TABLE, pk2)


TOAST_UNCHANGED = Scenario(
    name="toast-unchanged",
    summary="large laudo (text, EXTERNAL), jsonb and text[] stored out of line; updates that "
    "touch only small columns",
    expect="the large values arrive in full on insert and when rewritten; in the other updates "
    "they are marked unchanged (never a placeholder stored as data); replaying the "
    "stream gives the table",
    tables=(TABLE,),
    run=run_toast_unchanged,
)
