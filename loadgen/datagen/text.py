"""Lazy text columns: vocabulary picks, fixed-width ASCII and literals, joined only when needed.

A row generator describes a text column as parts (``Pool.take(idx)``, ``Text.ascii(matrix)``,
literals) and a NULL mask. ``Text.to_objects()`` gives the public object array of ``str``;
``Text.copy_values()`` gives COPY-escaped UTF-8 ``bytes`` straight from pools whose entries were
escaped and encoded once, so the seeder never builds, escapes or encodes a Python ``str`` per
value. Pure; any process.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import numpy.typing as npt

ObjArray = npt.NDArray[np.object_]
Int64Array = npt.NDArray[np.int64]
NULL = b"\\N"
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def escape(text: str) -> str:
    """Escape one value for COPY text format (backslash first)."""
    for old, new in _ESCAPES:
        text = text.replace(old, new)
    return text


def obj_array(items: Sequence[object]) -> ObjArray:
    """A 1-D object array holding ``items`` as they are (no nested-sequence guessing)."""
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


class Pool:
    """A vocabulary: entries as ``str`` (``text``) and as escaped UTF-8 ``bytes`` (lazily)."""

    def __init__(self, items: Sequence[str]) -> None:
        self.text: ObjArray = obj_array(items)

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, idx: Int64Array) -> ObjArray:
        return self.text[idx]  # type: ignore[no-any-return]

    @cached_property
    def copy_bytes(self) -> ObjArray:
        return obj_array([escape(s).encode("utf-8") for s in self.text.tolist()])

    def take(self, idx: Int64Array) -> Text:
        """The entries at ``idx`` (``int64`` ``(n,)``) as a lazy text column."""
        return Text((_Take(self, np.asarray(idx)),), len(idx))


class _Take:
    __slots__ = ("idx", "pool")

    def __init__(self, pool: Pool, idx: Int64Array) -> None:
        self.pool, self.idx = pool, idx


class _Ascii:
    __slots__ = ("matrix",)

    def __init__(self, matrix: npt.NDArray[np.uint8]) -> None:
        self.matrix = matrix  # (n, w) ASCII codes, NUL-padded on the right


_Part = _Take | _Ascii | str


class Text:
    """A text column of ``n`` rows: the concatenation of its parts, NULL where ``null``."""

    __slots__ = ("n", "null", "parts")

    def __init__(
        self, parts: tuple[_Part, ...], n: int, null: npt.NDArray[np.bool_] | None = None
    ) -> None:
        self.parts, self.n, self.null = parts, n, null

    def __len__(self) -> int:
        return self.n

    @staticmethod
    def ascii(matrix: npt.NDArray[np.integer]) -> Text:
        """Rows of ASCII codes ``(n, w)``; trailing NUL (0) bytes end a shorter value."""
        m = np.ascontiguousarray(matrix, dtype=np.uint8)
        return Text((_Ascii(m),), len(m))

    def __add__(self, other: Text | str) -> Text:
        if isinstance(other, str):
            return Text((*self.parts, other), self.n, self.null)
        return Text((*self.parts, *other.parts), self.n, _or(self.null, other.null))

    def __radd__(self, other: str) -> Text:
        return Text((other, *self.parts), self.n, self.null)

    def with_nulls(self, null: npt.NDArray[np.bool_]) -> Text:
        return Text(self.parts, self.n, _or(self.null, null))

    def __getitem__(self, key: slice) -> Text:
        parts = tuple(_slice(p, key) for p in self.parts)
        return Text(
            parts, len(range(*key.indices(self.n))), None if self.null is None else self.null[key]
        )

    def _join(self, pieces: list[ObjArray | str | bytes]) -> ObjArray:
        out = pieces[0]
        for p in pieces[1:]:
            out = out + p  # type: ignore[operator]  # object arrays: C loop of str/bytes concat
        if not isinstance(out, np.ndarray):  # only literals
            out = obj_array([out] * self.n)
        return out

    def to_objects(self) -> ObjArray:
        """Materialise as an object array of ``str`` (``None`` for NULL)."""
        pieces: list[ObjArray | str | bytes] = []
        for p in self.parts:
            if isinstance(p, _Take):
                pieces.append(p.pool.text[p.idx])
            elif isinstance(p, _Ascii):
                w = p.matrix.shape[1]
                pieces.append(p.matrix.view(f"S{w}").ravel().astype(f"U{w}").astype(object))
            else:
                pieces.append(p)
        out = self._join(pieces)
        if self.null is not None:
            out = out.copy()
            out[self.null] = None
        return out

    def copy_values(self) -> list[bytes]:
        """COPY text values: escaped UTF-8 ``bytes`` per row, ``\\N`` for NULL."""
        pieces: list[ObjArray | str | bytes] = []
        for p in self.parts:
            if isinstance(p, _Take):
                pieces.append(p.pool.copy_bytes[p.idx])
            elif isinstance(p, _Ascii):
                # 'S' views drop the trailing NULs; ASCII letters/digits need no escaping
                pieces.append(p.matrix.view(f"S{p.matrix.shape[1]}").ravel().astype(object))
            else:
                pieces.append(escape(p).encode("utf-8"))
        values: list[bytes] = self._join(pieces).tolist()
        if self.null is not None:
            for i in np.flatnonzero(self.null).tolist():
                values[i] = NULL
        return values


def _or(
    a: npt.NDArray[np.bool_] | None, b: npt.NDArray[np.bool_] | None
) -> npt.NDArray[np.bool_] | None:
    if a is None:
        return b
    return a if b is None else a | b


def _slice(part: _Part, key: slice) -> _Part:
    if isinstance(part, _Take):
        return _Take(part.pool, part.idx[key])
    if isinstance(part, _Ascii):
        return _Ascii(part.matrix[key])
    return part
