"""pgoutput v1 decoder on hand-built messages (the byte layouts of the protocol documentation).

Real server output is covered in tests/integration/test_cdc_decoder.py; these cover the kinds a
plain server rarely sends (Origin, Type) and malformed input.
"""

from __future__ import annotations

import pickle
import struct

import pytest

from loadgen.cdc import pgoutput as P


def _tuple(*vals: object) -> bytes:
    out = struct.pack(">h", len(vals))
    for v in vals:
        if v is None:
            out += b"n"
        elif v is P.UNCHANGED_TOAST:
            out += b"u"
        else:
            raw = str(v).encode()
            out += b"t" + struct.pack(">i", len(raw)) + raw
    return out


def test_begin_commit() -> None:
    b = P.decode(b"B" + struct.pack(">QqI", 0x16_B374D848, 123, 4_000_000_000))
    assert b == P.Begin(0x16_B374D848, 123, 4_000_000_000)
    c = P.decode(b"C" + struct.pack(">bQQq", 0, 10, 20, 30))
    assert c == P.Commit(0, 10, 20, 30)
    assert P.format_lsn(b.final_lsn) == "16/B374D848"
    assert P.parse_lsn("16/B374D848") == b.final_lsn


def test_origin_type_relation() -> None:
    assert P.decode(b"O" + struct.pack(">Q", 99) + b"node_a\x00") == P.Origin(99, "node_a")
    assert P.decode(b"Y" + struct.pack(">I", 16400) + b"public\x00mood\x00") == P.Type(
        16400, "public", "mood"
    )
    rel = P.decode(
        b"R"
        + struct.pack(">I", 7)
        + b"s\x00t\x00f"
        + struct.pack(">h", 2)
        + b"\x01id\x00"
        + struct.pack(">Ii", 20, -1)
        + b"\x00nome\x00"
        + struct.pack(">Ii", 1043, 154)
    )
    assert isinstance(rel, P.Relation)
    assert rel.replica_identity == "f" and rel.column_names == ("id", "nome")
    assert rel.columns[0].is_key and not rel.columns[1].is_key and rel.columns[1].typmod == 154


def test_insert_update_delete_tuples() -> None:
    ins = P.decode(b"I" + struct.pack(">I", 7) + b"N" + _tuple("1", "Zoë 🏥", None, ""))
    assert ins == P.Insert(7, ("1", "Zoë 🏥", None, ""))
    upd = P.decode(
        b"U"
        + struct.pack(">I", 7)
        + b"O"
        + _tuple("1", "a")
        + b"N"
        + _tuple("1", P.UNCHANGED_TOAST)
    )
    assert upd == P.Update(7, "O", ("1", "a"), ("1", P.UNCHANGED_TOAST))
    plain = P.decode(b"U" + struct.pack(">I", 7) + b"N" + _tuple("2"))
    assert plain == P.Update(7, None, None, ("2",))
    dele = P.decode(b"D" + struct.pack(">I", 7) + b"K" + _tuple("1", None))
    assert dele == P.Delete(7, "K", ("1", None))


def test_truncate_and_message() -> None:
    t = P.decode(b"T" + struct.pack(">ib", 2, 3) + struct.pack(">II", 7, 8))
    assert isinstance(t, P.Truncate)
    assert t.relids == (7, 8) and t.is_cascade and t.is_restart_identity
    body = b"loadgen\x00" + struct.pack(">i", 3) + b"a\x00b"
    m = P.decode(b"M" + struct.pack(">bQ", 0, 55) + body)
    assert m == P.Message(False, 55, "loadgen", b"a\x00b")


def test_unchanged_toast_is_a_singleton_not_text() -> None:
    assert pickle.loads(pickle.dumps(P.UNCHANGED_TOAST)) is P.UNCHANGED_TOAST
    assert P.UNCHANGED_TOAST != "u" and not isinstance(P.UNCHANGED_TOAST, str)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"Z", "unknown pgoutput message kind 'Z'"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">h", 1) + b"b", "binary"),
        (b"I" + struct.pack(">I", 7) + b"N" + struct.pack(">h", 1) + b"t\x00\x00", "malformed"),
        (b"I" + struct.pack(">I", 7) + b"X", "expected 'N'"),
        (b"D" + struct.pack(">I", 7) + b"N" + _tuple("1"), "expected 'K' or 'O'"),
        (b"B\x00", "malformed pgoutput message 'B'"),
    ],
)
def test_malformed_input_raises_decode_error(data: bytes, match: str) -> None:
    with pytest.raises(P.DecodeError, match=match):
        P.decode(data)
