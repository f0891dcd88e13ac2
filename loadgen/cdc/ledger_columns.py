"""A typed ledger chunk (``reader.ChangeLine``s) as int columns for ``ledger_index.load``:
C-level passes over the lines (attrgetter, fromiter), no per-line Python code; the after-image
hash is ``hashing.json_hash`` of the line's raw ``after`` text (never decoded)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from loadgen.ledger import ChangeLine

OP_CODES: Mapping[str, int] = {"c": 0, "u": 1, "d": 2}


def as_dict(o: ChangeLine) -> dict[str, Any]:
    """A typed line as the dict its JSON is (for the line-by-line path)."""
    out = {f: getattr(o, f) for f in o.__struct_fields__ if f not in ("after", "before")}
    out = {k: v for k, v in out.items() if v is not None}
    out["after"] = orjson.loads(bytes(o.after))
    if len(o.before):
        out["before"] = orjson.loads(bytes(o.before))
    return out


_INTS = operator.attrgetter("txid", "seq", "pk", "mono_ns")
_TABLE, _OP, _AFTER = (operator.attrgetter(k) for k in ("table", "op", "after"))
_OLD_PK, _BEFORE, _OP_NAME = (operator.attrgetter(k) for k in ("old_pk", "before", "op_name"))
_NULL_HASH = hash(b"null")


def typed_columns(
    objs: list[ChangeLine],
    codes: dict[str, int],
    code: Callable[[str], int],
    tracked: frozenset[str],
    split_pk_updates: bool,
) -> tuple[dict[str, npt.NDArray[np.int64]], list[int]] | None:
    """Columns (xid, seq, table, pk, op, vhash, mono) of a typed chunk (C-level passes, no
    per-line Python code), and the indices of its lines with extras; None when a line lacks
    a required field, or is a key change to split (the
    line-by-line path handles those)."""
    n = len(objs)
    for t in set(map(_TABLE, objs)) - codes.keys():
        if t is not None:
            code(t)  # a table first seen here gets its code
    old_pks = list(map(_OLD_PK, objs))
    has_old_pk = old_pks.count(None) != n
    if split_pk_updates and has_old_pk:
        return None
    try:
        ints = np.fromiter(itertools.chain.from_iterable(map(_INTS, objs)), np.int64, 4 * n)
        tabs = np.fromiter(map(codes.__getitem__, map(_TABLE, objs)), np.int64, n)
        ops = np.fromiter(map(OP_CODES.__getitem__, map(_OP, objs)), np.int64, n)
    except (KeyError, TypeError, ValueError):  # (None is not an int)
        return None
    raws = list(map(bytes, map(_AFTER, objs)))
    if raws.count(b"null") + sum(map(bytes.startswith, raws, itertools.repeat(b"{"))) != n:
        return None  # an after that is neither an object nor null
    vhash = np.fromiter(map(hash, raws), np.int64, n)
    vhash[vhash == _NULL_HASH] = 0
    ints = ints.reshape(n, 4)
    cols = {"xid": ints[:, 0], "seq": 2 * ints[:, 1], "table": tabs, "pk": ints[:, 2]}
    cols |= {"op": ops, "vhash": vhash, "mono": ints[:, 3]}
    sparse: list[int] = []
    op_names = set(map(_OP_NAME, objs))
    if has_old_pk or any(map(len, map(_BEFORE, objs))) or not op_names.isdisjoint(tracked):
        sparse = [
            i
            for i, o in enumerate(objs)
            if o.old_pk is not None or len(o.before) or o.op_name in tracked
        ]
    return cols, sparse
