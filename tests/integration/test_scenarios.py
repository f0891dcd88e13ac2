"""Each CDC scenario on a real server (wal_level=logical): run it with a ledger, decode our
pgoutput slot, and check the captured stream against what the ledger says (counts, ops, keys,
values, old keys, before-images, truncates) and the replayed stream against the tables."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from loadgen import db, scenarios
from loadgen.cdc import pgoutput as P
from loadgen.cdc import slot as S
from loadgen.ledger import part_files, read_ledger
from loadgen.ledger.run_end import ledger_end
from loadgen.scenarios import ScenarioOptions, ScenarioResult
from loadgen.scenarios.recorder import TextRow

pytestmark = pytest.mark.db

SMALL = ScenarioOptions(
    big_txn_changes=2_000, num_concurrent_workers=2, small_txns_per_worker=10, toast_bytes=6_000
)
_IDENTITY_TABLES = ("cdc_identidade_default", "cdc_identidade_full", "cdc_identidade_index")


# Scenarios whose stream differs under REPLICA IDENTITY FULL (old tuples, TOAST) run under both.
BOTH_IDENTITIES = pytest.mark.parametrize("cdc", ["default", "full"], indirect=True)


@dataclass
class Event:
    """One captured row change (or truncate), with column names attached."""

    kind: str  # c u d t
    table: str
    new: dict[str, Any] | None = None  # values may be UNCHANGED_TOAST
    old: dict[str, Any] | None = None
    old_kind: str | None = None
    truncated: tuple[str, ...] = ()
    options: int = 0


def key_of(e: Event, rows: dict[int, dict[str, Any]]) -> int:
    """The event's id; a USING INDEX old tuple has no id: find the row by its key columns."""
    row = e.new if e.new is not None else e.old
    assert row is not None
    if row["id"] is not None:
        return int(row["id"])
    assert e.old is not None and e.old_kind == "K"
    key = {k: v for k, v in e.old.items() if v is not None}
    found = [pk for pk, r in rows.items() if all(r[k] == v for k, v in key.items())]
    assert len(found) == 1, f"no single row with identity {key}"
    return found[0]


@dataclass
class Captured:
    txns: dict[int, list[Event]] = field(default_factory=dict)  # xid32 → events, commit order
    num_toast_markers: int = 0
    relations: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # name → versions


@dataclass
class Cdc:
    conn: psycopg.Connection
    dsn: str
    slot: str
    publication: str  # every scenario table; partitions published under their own names
    ledger: str
    root_publication: str  # the same tables with publish_via_partition_root = true

    def run(self, *names: str, options: ScenarioOptions = SMALL) -> list[ScenarioResult]:
        return scenarios.run(self.dsn, names, ledger_path=self.ledger, options=options, keep=True)

    def capture(
        self, publication: str | None = None, table_of: dict[str, str] | None = None
    ) -> Captured:
        return capture(self.conn, self.slot, publication or self.publication, table_of or {})


def capture(
    conn: psycopg.Connection, slot: str, publication: str, table_of: dict[str, str]
) -> Captured:
    """Decode the slot into per-transaction events (``table_of`` renames relations)."""
    out = Captured()
    rels: dict[int, P.Relation] = {}
    current: list[Event] = []
    xid = 0

    def name(relid: int) -> str:
        n = rels[relid].name
        return table_of.get(n, n)

    def row(relid: int, values: tuple[P.Value, ...] | None) -> dict[str, Any] | None:
        if values is None:
            return None
        cols = rels[relid].column_names
        assert len(cols) == len(values)
        return dict(zip(cols, values, strict=True))

    for _, _, m in S.iter_messages(conn, slot, publication, batch_changes=500):
        if isinstance(m, P.Begin):
            current, xid = [], m.xid
        elif isinstance(m, P.Commit):
            if current:
                out.txns[xid] = current
        elif isinstance(m, P.Relation):
            rels[m.relid] = m
            out.relations.setdefault(m.name, []).append(m.column_names)
        elif isinstance(m, P.Insert):
            current.append(Event("c", name(m.relid), new=row(m.relid, m.new)))
        elif isinstance(m, P.Update):
            out.num_toast_markers += sum(v is P.UNCHANGED_TOAST for v in m.new)
            current.append(
                Event(
                    "u",
                    name(m.relid),
                    new=row(m.relid, m.new),
                    old=row(m.relid, m.old),
                    old_kind=m.old_kind,
                )
            )
        elif isinstance(m, P.Delete):
            current.append(Event("d", name(m.relid), old=row(m.relid, m.old), old_kind=m.old_kind))
        elif isinstance(m, P.Truncate):
            current.append(
                Event("t", "", truncated=tuple(name(r) for r in m.relids), options=m.options)
            )
    return out


def table_rows(conn: psycopg.Connection, table: str) -> dict[int, TextRow]:
    cols = scenarios.recorder.table_columns(conn, table)
    q = sql.SQL("SELECT {} FROM {}").format(
        scenarios.recorder.column_list(cols), sql.Identifier(table)
    )
    return {
        int(r[0]): dict(zip(cols, r, strict=True))  # type: ignore[arg-type]
        for r in scenarios.recorder.text_rows(conn, q)
    }


def check_stream(cdc: Cdc, results: list[ScenarioResult], captured: Captured) -> dict[str, int]:
    """Assert the captured stream is exactly the ledger's changes; return some counts.

    Per transaction: same transaction set (by 32-bit xid), per key the same ops in the same
    order, after-images equal once unchanged-TOAST markers are resolved from the previous
    image (never taken as data), old keys and before-images as recorded, truncates as recorded.
    Then the replayed stream equals the tables.
    """
    ledger = read_ledger(cdc.ledger)
    assert not ledger.bad_lines
    kept = {(t.txid, seq): ch for r in results for t in r.txns for seq, ch in enumerate(t.changes)}
    assert len(kept) == len(ledger.entries), "the ledger file has every kept change once"
    # the file carries everything the check needs (old_pk and before included)
    by_txn: dict[int, list[Any]] = defaultdict(list)
    for e in ledger.entries:
        ch = kept[(e.txid, e.seq)]
        assert (ch.table, ch.op, ch.pk, ch.after, ch.op_name, ch.old_pk, ch.before) == (
            e.table,
            e.op,
            e.pk,
            e.after,
            e.op_name,
            e.old_pk,
            e.before,
        )
        assert e.op_name.startswith("scenario:")
        by_txn[e.txid % 2**32].append(ch)
    assert set(captured.txns) == set(by_txn), "same committed transactions (none leaked)"
    state: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    counts = {"changes": 0, "toast_resolved": 0, "truncates": 0, "old_keys": 0, "befores": 0}
    for xid in captured.txns:  # commit order
        want, got = by_txn[xid], captured.txns[xid]
        want_t = [c for c in want if c.op == "t"]
        got_t = [e for e in got if e.kind == "t"]
        assert sorted(c.table for c in want_t) == sorted(t for e in got_t for t in e.truncated)
        per_key_want: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for c in want:
            if c.op != "t":
                per_key_want[(c.table, c.pk)].append(c)
        for e in got:  # replay in delivery order, checking each against the ledger's change
            if e.kind == "t":
                for t in e.truncated:
                    state[t].clear()
                counts["truncates"] += 1
                continue
            pk = key_of(e, state[e.table])
            assert per_key_want.get((e.table, pk)), f"xid {xid}: unexpected {e}"
            c = per_key_want[(e.table, pk)].pop(0)
            assert (c.op, c.table, c.pk) == (e.kind, e.table, pk)
            counts["changes"] += 1
            rows = state[e.table]
            if e.kind == "d":
                assert e.old is not None
                rows.pop(pk)
            else:
                assert e.new is not None
                prev = rows.get(c.old_pk if c.old_pk is not None else pk, {})
                image = {}
                for col, v in e.new.items():
                    if v is P.UNCHANGED_TOAST:
                        counts["toast_resolved"] += 1
                        assert col in prev, f"unchanged TOAST {col} without a previous value"
                        v = prev[col]
                    assert v is not P.UNCHANGED_TOAST and v != "UNCHANGED_TOAST"
                    image[col] = v
                assert image == c.after, (e.table, pk)
                if c.old_pk is not None:
                    rows.pop(c.old_pk)
                rows[pk] = image
            if c.old_pk is not None and e.table != "cdc_identidade_index":
                # (under USING INDEX the id is not part of the identity: no old id is sent)
                counts["old_keys"] += 1
                assert e.old is not None and int(e.old["id"]) == c.old_pk
            if c.before is not None:
                counts["befores"] += 1
                assert e.old is not None, (e.table, e.kind, "before-image missing")
                if e.old_kind == "K":
                    assert {k: e.old[k] for k in c.before} == c.before
                    assert all(v is None for k, v in e.old.items() if k not in c.before)
                else:
                    assert e.old == c.before
            elif c.op == "u" and e.table in _IDENTITY_TABLES:
                assert e.old is None, (e.table, "old tuple sent though no identity column changed")
        assert not any(per_key_want.values()), f"xid {xid}: not captured {per_key_want}"
    for table in {t for r in results for t in scenarios.get(r.name).tables}:
        if table in state or table_rows(cdc.conn, table):
            assert state[table] == table_rows(cdc.conn, table), f"final state of {table}"
    return counts


@pytest.fixture(params=["default"])
def cdc(request: pytest.FixtureRequest, dsn: str, tmp_path: Path) -> Iterator[Cdc]:
    """Scenario tables in the test's schema, a publication for them and a fresh slot.

    ``full`` (tests marked with ``BOTH_IDENTITIES``): every scenario table under REPLICA
    IDENTITY FULL (replica-identity resets its own).
    """
    tag = uuid.uuid4().hex[:10]
    slot, pub = f"lg_scn_slot_{tag}", f"lg_scn_pub_{tag}"
    conn = db.connect(dsn, autocommit=True)
    has_slot = False
    try:
        scenarios.ensure_tables(conn)
        tables = scenarios.table_names()
        if request.param == "full":
            for t in tables:
                conn.execute(
                    sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(t))
                )
        conn.execute(
            sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                sql.Identifier(pub), sql.SQL(", ").join(map(sql.Identifier, tables))
            )
        )
        # Publications must exist before the slot: decoding any change (anyone's) looks them
        # up in the catalog as of that change.
        conn.execute(
            sql.SQL(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)"
            ).format(sql.Identifier(pub + "_root"), sql.SQL(", ").join(map(sql.Identifier, tables)))
        )
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        has_slot = True
        yield Cdc(conn, dsn, slot, pub, str(tmp_path / "ledger"), pub + "_root")
    finally:
        if has_slot:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        for p in (pub, pub + "_root"):
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(p)))
        conn.close()


@BOTH_IDENTITIES
def test_toast_unchanged(cdc: Cdc) -> None:
    results = cdc.run("toast-unchanged")
    captured = cdc.capture()
    counts = check_stream(cdc, results, captured)
    assert counts["changes"] == results[0].num_changes == 10
    # 4 small-column updates of row 1 and 1 of row 2 leave laudo, anexos, marcadores out
    assert captured.num_toast_markers == counts["toast_resolved"] >= 5 * 3
    big = read_ledger(cdc.ledger).entries[0].after
    assert big is not None and len(big["laudo"] or "") > SMALL.toast_bytes


def test_replica_identity(cdc: Cdc) -> None:
    results = cdc.run("replica-identity")
    counts = check_stream(cdc, results, cdc.capture())
    assert counts["changes"] == results[0].num_changes == 3 * 7
    # default: the id update and 2 deletes; full: all 5; index: the codigo update and 2 deletes
    assert counts["befores"] == 3 + 5 + 3
    assert counts["old_keys"] == 2


@BOTH_IDENTITIES
def test_pk_update(cdc: Cdc) -> None:
    results = cdc.run("pk-update")
    counts = check_stream(cdc, results, cdc.capture())
    assert counts["changes"] == results[0].num_changes == 4 + (1 + 3) + (3 + 3) + 1
    assert counts["old_keys"] == 3  # two patient key changes and one exame's


@BOTH_IDENTITIES
def test_delete_tombstone(cdc: Cdc) -> None:
    results = cdc.run("delete-tombstone")
    captured = cdc.capture()
    counts = check_stream(cdc, results, captured)
    assert counts["changes"] == results[0].num_changes == 4 + 1 + 3 + 4
    deletes = [e for txn in captured.txns.values() for e in txn if e.kind == "d"]
    assert len(deletes) == 1 + 3 + 2
    assert table_rows(cdc.conn, "cdc_pacientes") == {}


def test_truncate(cdc: Cdc) -> None:
    results = cdc.run("truncate")
    captured = cdc.capture()
    counts = check_stream(cdc, results, captured)
    assert counts["truncates"] == 2  # one message per TRUNCATE statement
    cascade = [e for txn in captured.txns.values() for e in txn if e.kind == "t"][1]
    assert set(cascade.truncated) == {"cdc_lotes", "cdc_lote_itens"} and cascade.options & 1
    assert [c.op for c in results[0].txns[1].changes] == ["t"]
    assert len(table_rows(cdc.conn, "cdc_fila")) == 1


def test_big_transaction_with_concurrent_small_ones(cdc: Cdc) -> None:
    results = cdc.run("big-transaction")
    captured = cdc.capture()
    counts = check_stream(cdc, results, captured)
    big = max(captured.txns.values(), key=len)
    assert len(big) == SMALL.big_txn_changes
    order = list(captured.txns)
    big_xid = next(x for x, txn in captured.txns.items() if txn is big)
    # small transactions that began after the big one and committed before it: interleaved
    assert any(x > big_xid for x in order[: order.index(big_xid)])
    small = [txn for txn in captured.txns.values() if txn is not big]
    assert len(small) >= SMALL.num_concurrent_workers * SMALL.small_txns_per_worker
    assert counts["changes"] == results[0].num_changes
    writers = {e.writer for e in read_ledger(cdc.ledger).entries}
    assert writers == {scenarios.SCENARIO_WRITER_ID + i for i in range(3)}
    # the run ended with its extra connections gone: its end is recorded, past its changes
    end = ledger_end(part_files(cdc.ledger))
    assert end.lsn is not None, end.why_unknown
    changes = (P.Insert, P.Update, P.Delete)
    lsns = [lsn for lsn, _, m in S.iter_messages(cdc.conn, cdc.slot, cdc.publication)
            if isinstance(m, changes)]  # fmt: skip
    assert len(lsns) >= SMALL.big_txn_changes and max(lsns) < end.lsn


def test_rollback_leaves_nothing(cdc: Cdc) -> None:
    results = cdc.run("rollback")
    captured = cdc.capture()
    counts = check_stream(cdc, results, captured)
    assert counts["changes"] == results[0].num_changes == 1 + 2 + 1
    texts = [str(e.new) for txn in captured.txns.values() for e in txn]
    assert not any("descartado" in t or "nunca" in t for t in texts)
    assert counts["truncates"] == 0


def _by_rotulo(results: list[ScenarioResult], table: str) -> dict[str, TextRow]:
    """The last after-image the ledger holds for each row, by its rotulo."""
    last: dict[int, TextRow] = {}
    for t in results[0].txns:
        for ch in t.changes:
            if ch.table == table and ch.after is not None:
                last[ch.pk] = ch.after
    return {str(a["rotulo"]): a for a in last.values()}


def test_numeric_extremes(cdc: Cdc) -> None:
    results = cdc.run("numeric-extremes")
    counts = check_stream(cdc, results, cdc.capture())
    assert counts["changes"] == results[0].num_changes == 7 + 3
    rows = _by_rotulo(results, "cdc_numericos")
    assert rows["nan"]["duplo"] == rows["nan"]["simples"] == "NaN"
    assert rows["maximos"]["livre"] == "-" + "9" * 300 + "." + "9" * 300
    assert rows["minimos"]["livre"] == "-0." + "0" * 999 + "1"
    assert rows["minimos"]["duplo"] == "5e-324" and rows["minimos"]["inteiro"] == str(-(2**63))
    assert rows["zero-negativo"]["duplo"] == "-0"
    assert rows["infinitos"]["duplo"] == "Infinity"


def test_time_extremes(cdc: Cdc) -> None:
    results = cdc.run("time-extremes")
    counts = check_stream(cdc, results, cdc.capture())
    assert counts["changes"] == results[0].num_changes == 6 + 2 * 5 + 1
    rows = _by_rotulo(results, "cdc_tempos")
    assert rows["infinito"]["instante"] == "-infinity" and rows["infinito"]["dia"] == "infinity"
    assert rows["antes-de-cristo"]["dia"] == "4713-01-01 BC"
    assert rows["futuro-distante"]["local_ts"] == "294276-12-31 23:59:59.999999"
    assert rows["fuso Asia/Kolkata"]["instante"] == "2025-11-01 19:00:00.000001+00"
    assert rows["fuso Pacific/Chatham"]["hora_tz"] == "08:00:00+13:45"


def test_types(cdc: Cdc) -> None:
    results = cdc.run("types")
    counts = check_stream(cdc, results, cdc.capture())
    assert counts["changes"] == results[0].num_changes == 4 + 2
    rows = _by_rotulo(results, "cdc_tipos")
    assert rows["json-null"]["doc"] == "null" and rows["nulos"]["doc"] is None
    assert rows["cheio"]["dados"] == "\\x000000c3a7c3a3" + "6f"
    assert rows["vazios"]["dados"] == "\\x" and rows["vazios"]["textos"] == "{}"
    assert rows["nulos"]["textos"] == '{a,NULL,"b c"}'
    assert rows["nulos"]["ativo"] == "t" and rows["json-null"]["ip"] == "192.168.0.1/24"
    assert rows["vazios"]["ip"] == "0.0.0.0/0" and rows["nulos"]["ip"] == "::ffff:10.0.0.1"


def test_unicode_by_insert_and_copy(cdc: Cdc) -> None:
    from loadgen.scenarios.values import UNICODE_TEXTS

    results = cdc.run("unicode")
    counts = check_stream(cdc, results, cdc.capture())
    n = len(UNICODE_TEXTS)
    assert counts["changes"] == results[0].num_changes == 2 * n + 1
    inserted, copied = results[0].txns[0].changes, results[0].txns[1].changes
    for source, by_insert, by_copy in zip(UNICODE_TEXTS, inserted, copied, strict=True):
        assert by_insert.after is not None and by_copy.after is not None
        assert (
            by_insert.after["nome"],
            by_insert.after["endereco"],
            by_insert.after["obs"],
        ) == source
        assert (by_copy.after["nome"], by_copy.after["endereco"], by_copy.after["obs"]) == source


@BOTH_IDENTITIES
def test_schema_change(cdc: Cdc) -> None:
    results = cdc.run("schema-change")
    captured = cdc.capture()
    counts = check_stream(cdc, results, captured)
    assert counts["changes"] == results[0].num_changes == 3 + 2 + 2 + 1 + 2 + 1 + 4
    shapes = {cols for cols in captured.relations["cdc_evolucao"]}
    assert ("id", "nome") in shapes and ("id", "nome", "prioridade", "registrado_em") in shapes
    assert ("id", "nome", "obs", "prioridade") in shapes
    changes = [c for t in results[0].txns for c in t.changes]
    by_default = next(c for c in changes if c.after and c.after["nome"].startswith("prioridade"))
    assert by_default.after is not None and by_default.after["prioridade"] == "3"


@BOTH_IDENTITIES
def test_partitioned_via_root_on_and_off(cdc: Cdc) -> None:
    results = cdc.run("partitioned")
    on = cdc.capture(publication=cdc.root_publication)
    assert {e.table for txn in on.txns.values() for e in txn} == {"cdc_agenda"}
    counts = check_stream(cdc, results, on)
    assert counts["changes"] == results[0].num_changes == 3 + 1 + 2 + 3 + 1
    assert ["d", "c"] in [[e.kind for e in txn] for txn in on.txns.values()]
    leaf_to_root = {
        p: "cdc_agenda" for p in ("cdc_agenda_2024", "cdc_agenda_2025", "cdc_agenda_outros")
    }
    off = cdc.capture(table_of=leaf_to_root)
    assert {"cdc_agenda_2024", "cdc_agenda_2025", "cdc_agenda_outros"} <= set(off.relations)
    assert "cdc_agenda" not in off.relations
    check_stream(cdc, results, off)


FAULTS = (
    "drop_event",
    "toast_marker_as_data",
    "reorder_pk_update",
    "leak_rolled_back",
    "alter_value",
    "old_key_lost",
)


def inject(good: Captured, fault: str) -> Captured:
    """A copy of ``good`` with one fault injected."""
    txns = {x: list(evs) for x, evs in good.txns.items()}
    events = [(x, i, e) for x, evs in txns.items() for i, e in enumerate(evs)]
    if fault == "drop_event":
        x, i, _ = next((x, i, e) for x, i, e in events if e.table == "cdc_exames")
        del txns[x][i]
    elif fault == "toast_marker_as_data":
        x, i, e = next(
            (x, i, e) for x, i, e in events if e.new and P.UNCHANGED_TOAST in e.new.values()
        )
        assert e.new is not None
        txns[x][i] = Event(
            e.kind,
            e.table,
            new={k: "UNCHANGED_TOAST" if v is P.UNCHANGED_TOAST else v for k, v in e.new.items()},
            old=e.old,
            old_kind=e.old_kind,
        )
    elif fault == "reorder_pk_update":  # the key change delivered before the update preceding it
        x = next(x for x, evs in txns.items() if sum(e.table == "cdc_pacientes" for e in evs) == 3)
        first, second = [i for i, e in enumerate(txns[x]) if e.table == "cdc_pacientes"][:2]
        txns[x][first], txns[x][second] = txns[x][second], txns[x][first]
    elif fault == "leak_rolled_back":
        txns[next(iter(txns))].append(
            Event(
                "c",
                "cdc_rascunhos",
                new={"id": "999999", "texto": "nunca existiu", "etapa": "descartado"},
            )
        )
    elif fault == "alter_value":
        x, i, e = next((x, i, e) for x, i, e in events if e.kind == "c")
        assert e.new is not None
        txns[x][i] = Event("c", e.table, new={**e.new, list(e.new)[1]: "alterado"})
    elif fault == "old_key_lost":
        x, i, e = next(
            (x, i, e)
            for x, i, e in events
            if e.kind == "u" and e.old is not None and e.table == "cdc_pacientes"
        )
        txns[x][i] = Event("u", e.table, new=e.new, old=None)
    return Captured(txns, good.num_toast_markers, good.relations)


def test_check_catches_injected_faults(cdc: Cdc) -> None:
    """The stream check is not vacuous: each corruption of a good capture makes it fail."""
    results = cdc.run("toast-unchanged", "pk-update", "rollback")
    good = cdc.capture()
    check_stream(cdc, results, good)
    for fault in FAULTS:
        with pytest.raises(AssertionError):
            check_stream(cdc, results, inject(good, fault))


def test_run_step_on_a_worker_connection(dsn: str, tmp_path: Path) -> None:
    """The engine hook: every scenario once on one non-autocommit connection and one ledger
    writer, as a stream worker would call it."""
    from loadgen.ledger import LedgerWriter

    with db.connect(dsn) as conn, LedgerWriter(str(tmp_path / "l"), 3) as writer:
        scenarios.ensure_tables(conn)
        total = 0
        for name in scenarios.SCENARIOS:
            r = scenarios.run_step(conn, name, ledger=writer)
            assert r.num_changes > 0 and conn.info.transaction_status == 0  # idle
            total += r.num_changes
    entries = read_ledger(str(tmp_path / "l")).entries
    assert len(entries) == total
    assert {e.op_name for e in entries} == {f"scenario:{n}" for n in scenarios.SCENARIOS}
    big = max(entries, key=lambda e: e.seq)
    assert big.seq + 1 == scenarios.STREAM_STEP_OPTIONS.big_txn_changes


@BOTH_IDENTITIES
def test_loadgen_cdc_verify_accepts_every_scenario(cdc: Cdc) -> None:
    """End to end with the project's verifier (``loadgen cdc verify``'s library call): every
    scenario, partitions published under their own names and via the root."""
    from loadgen.cdc import verify_run

    results = cdc.run(*scenarios.SCENARIOS)
    num_rows = sum(1 for r in results for t in r.txns for c in t.changes if c.op != "t")
    for publication in (cdc.publication, cdc.root_publication):
        report = verify_run.verify_slot(
            cdc.conn, cdc.ledger, slot=cdc.slot, publication=publication
        )
        failed = {c.name: c.examples[:2] for c in report.checks if not c.is_ok}
        assert report.is_ok, (publication, failed)
        assert report.counts["matched"] == num_rows
        assert report.counts["captured_truncates"] == report.counts["ledger_truncates"] == 3


def test_loadgen_cdc_verify_names_the_scenario_of_a_fault(cdc: Cdc) -> None:
    """A ledger line removed (a change the consumer has but the truth lacks, and vice versa)
    and a value altered: the verifier fails and its examples carry ``scenario:<name>``."""
    import orjson

    from loadgen.cdc import verify_run
    from loadgen.ledger import part_files

    cdc.run("pk-update", "toast-unchanged")
    part = part_files(cdc.ledger)[0]
    lines = Path(part).read_bytes().splitlines(keepends=True)
    objs = [o for o in map(orjson.loads, lines) if "type" not in o]  # change lines: format 1
    drop = next(i for i, o in enumerate(objs) if o.get("old_pk") is not None)
    alter = next(i for i, o in enumerate(objs) if o["table"] == "cdc_laudos" and o["op"] == "u")
    objs[alter]["after"]["status"] = "alterado"
    Path(part).write_bytes(
        b"".join(
            orjson.dumps(o, option=orjson.OPT_APPEND_NEWLINE)
            for i, o in enumerate(objs)
            if i != drop
        )
    )
    report = verify_run.verify_slot(
        cdc.conn, cdc.ledger, slot=cdc.slot, publication=cdc.publication
    )
    assert not report.is_ok
    checks = {c.name: c for c in report.checks}
    failed = {n: c.examples[:1] for n, c in checks.items() if not c.is_ok}
    # the dropped line fails a second check (its name is the verifier's business)
    assert "values" in failed and len(failed) >= 2, failed
    # the captured change without a ledger line names its table, which names the scenario
    other = next(ex[0] for n, ex in failed.items() if n != "values")
    assert scenarios.scenarios_of_table(other["table"])[0] == "pk-update"
    assert checks["values"].examples[0]["op_name"] == "scenario:toast-unchanged"


def test_cli_scenario_run_with_ledger(cli_env: dict[str, str], dsn: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    ledger = tmp_path / "run1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen",
            "scenario",
            "run",
            "truncate",
            "big-transaction",
            "--big-txn-changes",
            "500",
            "--repeat",
            "2",
            "--ledger",
            str(ledger),
        ],
        env=cli_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("truncate: 6 transactions, 11 changes") == 2
    entries = read_ledger(str(ledger)).entries
    assert f"done: 4 runs, {len(entries)} changes committed" in proc.stdout
    assert max(e.seq for e in entries) + 1 == 500  # the big transaction, twice
    with db.connect(dsn) as conn:
        assert len(table_rows(conn, "cdc_fila")) == 1  # the row written after the last truncate
