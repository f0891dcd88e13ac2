"""The slot feeder's vectorized path (``slot_batch``, ``SlotFeeder.chunks``) against the
one-message-at-a-time path, on hand-built pgoutput v1 streams that mix what it batches (plain
inserts, updates, deletes) with what it must leave to the decoder (old tuples, TOAST-able and
other tables, Relation/Truncate/Message mid-batch, values JSON escapes)."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import numpy as np
import orjson
import pytest

from loadgen.cdc import ledger_index
from loadgen.cdc import slot_batch as SB
from loadgen.cdc.change import OP_DELETE, CapturedBatch, CapturedChange, CapturedTruncate
from loadgen.cdc.hashing import dict_hash, row_hash
from loadgen.cdc.slot_feed import SlotFeeder
from loadgen.cdc.verify import Verifier
from loadgen.cdc.verify_run import feed
from loadgen.ledger import LedgerWriter
from loadgen.ledger.changes import RowChange
from tests.fixtures.pgoutput_wire import encode_tuple

COLS = ("id", "paciente_id", "motivo", "status")
TYPES = ((20, -1), (20, -1), (1043, 204), (1043, 24))  # plain: bounded, never TOASTed
WIDE = ((20, -1), (20, -1), (25, -1), (1043, 24))  # a text column: TOAST-able, not plain
ODD_VALUES = ['aspas "duplas"', "barra \\ invertida", "linha\nnova", "Zoë 🏥", "", "\x01"]


def _relation(relid: int, name: str, types: tuple[tuple[int, int], ...]) -> bytes:
    body = b"".join(
        bytes([1 if c == "id" else 0]) + c.encode() + b"\x00" + struct.pack(">Ii", *t)
        for c, t in zip(COLS, types, strict=True)
    )
    return (
        b"R"
        + struct.pack(">I", relid)
        + b"s\x00"
        + name.encode()
        + b"\x00d"
        + struct.pack(">h", len(COLS))
        + body
    )


RELS = {1: ("consultas", TYPES), 2: ("exames", WIDE), 3: ("not_ours", TYPES)}


def _row(pk: int, rnd: random.Random) -> tuple[str | None, ...]:
    motivo = rnd.choice(ODD_VALUES) if rnd.random() < 0.1 else f"motivo {pk} — rotina"
    return (str(pk), None if rnd.random() < 0.2 else str(pk % 7), motivo, "agendada")


def stream(seed: int, num_txns: int) -> tuple[list[tuple[int, int, bytes]], list[tuple]]:
    """Slot rows, and the ledger's view of them: (xid, [(table, op, pk, after)])."""
    rnd = random.Random(seed)
    rows: list[tuple[int, int, bytes]] = []
    txns = []
    lsn, pk = 0x1000, 0
    alive: dict[int, list[int]] = {1: [], 2: [], 3: []}

    def put(data: bytes, xid: int) -> None:
        nonlocal lsn
        lsn += 40
        rows.append((lsn, xid, data))

    for relid, (name, types) in RELS.items():
        put(_relation(relid, name, types), 0)
    for t in range(num_txns):
        xid = 5000 + t
        put(b"B" + struct.pack(">QqI", lsn + 999, 0, xid), xid)
        changes = []
        for _ in range(rnd.randint(1, 6)):
            relid = rnd.choice((1, 1, 1, 2, 3))
            name = RELS[relid][0]
            head = b"I" + struct.pack(">I", relid) + b"N"
            if alive[relid] and rnd.random() < 0.4:
                key = rnd.choice(alive[relid])
                vals = _row(key, rnd)
                if rnd.random() < 0.1:  # the whole old row (REPLICA IDENTITY FULL)
                    old = encode_tuple(vals)
                    put(
                        b"U" + struct.pack(">I", relid) + b"O" + old + b"N" + encode_tuple(vals),
                        xid,
                    )
                else:
                    put(b"U" + head[1:] + encode_tuple(vals), xid)
                changes.append((name, "u", key, vals))
            elif alive[relid] and rnd.random() < 0.2:
                key = alive[relid].pop(rnd.randrange(len(alive[relid])))
                old = (str(key), None, None, None)
                put(b"D" + struct.pack(">I", relid) + b"K" + encode_tuple(old), xid)
                changes.append((name, "d", key, None))
            else:
                pk += 1
                alive[relid].append(pk)
                vals = _row(pk, rnd)
                put(head + encode_tuple(vals), xid)
                changes.append((name, "c", pk, vals))
        if t % 97 == 50:
            put(_relation(1, "consultas", TYPES), xid)  # sent again mid-stream
        if t % 131 == 70:
            put(b"M" + struct.pack(">bQ", 1, lsn) + b"p\x00" + struct.pack(">i", 2) + b"hi", xid)
        put(b"C" + struct.pack(">bQQq", 0, lsn, lsn + 48, 0), xid)
        txns.append((xid, [c for c in changes if c[0] != "not_ours"]))
    return rows, txns


def _feeder(rows: list[tuple[int, int, bytes]], batched: bool) -> SlotFeeder:
    codes = ledger_index.TableCodes()
    kw = {"batches": [rows]} if batched else {"batches": [[r] for r in rows]}
    return SlotFeeder((), name="t", schema="s", codes=codes, identity_lookup=lambda t, k: None,
                      **kw)  # type: ignore[arg-type]  # fmt: skip


def _expand(items: list) -> list:
    out = []
    for it in items:
        if type(it) is CapturedBatch:
            for i in range(len(it)):
                ch = it.change(i)
                assert (ch.table, ch.op, ch.pk, ch.xid, ch.position) == (
                    int(it.table[i]), int(it.op[i]), int(it.pk[i]), int(it.xid[i]),
                    int(it.position[i]),
                )  # fmt: skip
                want = 0 if ch.op == OP_DELETE else row_hash(ch.names, ch.values)  # type: ignore[arg-type]
                assert int(it.rowhash[i]) == want, ch
                out.append(ch)
        else:
            out.append(it)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_give_what_one_at_a_time_gives(seed: int) -> None:
    rows, _ = stream(seed, 600)
    one, many = _feeder(rows, False), _feeder(rows, True)
    expected = list(one.chunks())
    items = list(many.chunks())
    assert any(type(i) is CapturedBatch for i in items)  # the fast path did run
    assert not any(type(i) is CapturedBatch for i in expected)
    got = _expand(items)
    assert got == expected
    assert many.stats == one.stats
    assert many.counts() == one.counts() and many.notes() == one.notes()


def test_batch_decoder_refuses_what_it_cannot_vouch_for() -> None:
    good = encode_tuple(("12", None, "x", "y"))
    toast = good[:-6] + b"u"  # an unchanged-TOAST column
    data = [good, toast, good[:-1], encode_tuple(("12", None, "x"))]
    lens = np.array([len(d) for d in data])
    buf = np.frombuffer(b"".join(data) + bytes(SB.PAD), np.uint8)
    starts = np.cumsum(lens) - lens
    vstart, vlen, null, end, ok = SB.tuples(buf, starts, 4)
    # a truncated tuple walks into the next message: its end is not the message's end
    assert (ok & (end == starts + lens)).tolist() == [True, False, False, False]
    assert null[0].tolist() == [False, True, False, False]
    digits = np.frombuffer(b"0042" + b"-1" + b"9" * 19 + b"12a" + bytes(8), np.uint8)
    vals, ok = SB.ids(digits, np.array([0, 4, 6, 25, 0]), np.array([4, 2, 19, 3, 0]))
    assert ok.tolist() == [True, False, False, False, False] and vals[0] == 42


def _ledger(tmp: Path, txns: list[tuple]) -> Path:
    with LedgerWriter(str(tmp), 0, fsync=False) as w:
        for xid, changes in txns:
            if changes:
                w.write_txn(xid, "2026-01-01T00:00:00Z", [
                    RowChange(t, op, pk, None if v is None else dict(zip(COLS, v, strict=True)),
                              "test")
                    for t, op, pk, v in changes
                ])  # fmt: skip
    return tmp


def _verify(ledger: Path, rows: list[tuple[int, int, bytes]]) -> dict:
    L = ledger_index.load(str(ledger))
    v = Verifier(L)
    f = SlotFeeder((), name="t", schema="s", codes=L.codes, identity_lookup=L.pk_by_identity,
                   batches=[rows])  # fmt: skip
    feed(v, f)
    return v.finish(None, "t").to_dict()


def test_verifier_on_batches_passes_and_fails_as_it_should(tmp_path: Path) -> None:
    rows, txns = stream(7, 400)
    ledger = _ledger(tmp_path / "l", txns)
    report = _verify(ledger, rows)
    assert report["ok"], report
    assert report["counts"]["captured_changes"] == sum(len(c) for _, c in txns)
    # one value changed on the way, one change of a ledger transaction the ledger lacks
    i = next(i for i, r in enumerate(rows) if r[2][:1] == b"I" and r[2][1:5] == b"\0\0\0\1")
    lsn, xid, data = rows[i]
    bad = data.replace(b"rotina", b"ROTINA")
    extra = (lsn + 1, xid, data[:6] + encode_tuple(("999999", "1", "x", "y")))
    report = _verify(ledger, rows[:i] + [(lsn, xid, bad), extra] + rows[i + 1 :])
    checks = {c["name"]: c for c in report["checks"]}
    assert not report["ok"]
    assert checks["values"]["count"] == 1 and checks["missing_from_ledger"]["count"] == 1
    assert sorted(n for n, c in checks.items() if not c["ok"]) == ["missing_from_ledger", "values"]
    diff = checks["values"]["examples"][0]["differences"]
    assert list(diff) == ["motivo"] and "ROTINA" in diff["motivo"]["captured"]
    assert checks["missing_from_ledger"]["examples"][0]["pk"] == 999999


def test_ledger_hash_is_the_raw_json_and_other_writers_still_match(tmp_path: Path) -> None:
    after = {"id": "1", "motivo": 'aspas " \\ \n Zoë', "status": None}
    assert dict_hash(after) == hash(orjson.dumps(after))
    assert row_hash(tuple(after), tuple(after.values())) == dict_hash(after)
    rows, txns = stream(11, 120)
    ledger = _ledger(tmp_path / "l", txns)
    L = ledger_index.load(str(ledger))
    objs = [json.loads(x) for p in L.parts for x in Path(p).read_text().splitlines()]
    changes = [o for o in objs if "type" not in o]
    assert [int(h) for h in L.vhash] == [
        0 if o["after"] is None else dict_hash(o["after"]) for o in changes
    ]
    # the same ledger written with spaces (json.dumps): hashes differ, columns agree
    part = Path(L.parts[0])
    part.write_text("".join(json.dumps(o) + "\n" for o in objs))
    report = _verify(ledger, rows)
    assert report["ok"], report


def test_truncate_mid_batch_keeps_order() -> None:
    rows, _ = stream(5, 200)
    at = len(rows) // 2
    lsn, xid, _ = rows[at]
    rows.insert(at, (lsn, xid, b"T" + struct.pack(">ibI", 1, 0, 1)))
    items = _expand(list(_feeder(rows, True).chunks()))
    assert items == list(_feeder(rows, False).chunks())
    assert sum(type(i) is CapturedTruncate for i in items) == 1
    assert all(type(i) in (CapturedChange, CapturedTruncate) for i in items)
