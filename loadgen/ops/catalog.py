"""The operations table, rendered from the registry: for ``loadgen ops list`` and the docs.

``docs/operations.md`` holds the Markdown table between two marker lines; ``make docs`` rewrites
it (``python -m loadgen.ops.catalog docs/operations.md``) and ``--check`` exits 1 when the
committed table differs from the registry (a test runs it).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadgen.ops.registry import KINDS, OPERATIONS

BEGIN = "<!-- operations table: generated from loadgen.ops.registry by `make docs`; do not edit -->"
END = "<!-- end of the operations table -->"


def entries(weights: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """One dict per operation, in registry order: name, kind, tables, default_weight, weight
    (``weights[name]``, else the default), share (weight / total, 0..1) and description."""
    got = {op.name: op.default_weight for op in OPERATIONS} | dict(weights or {})
    total = sum(got.values()) or 1.0
    return [
        {
            "name": op.name,
            "kind": op.kind,
            "tables": list(op.tables),
            "default_weight": op.default_weight,
            "weight": got[op.name],
            "share": got[op.name] / total,
            "description": op.description,
        }
        for op in OPERATIONS
    ]


def text_table(weights: Mapping[str, float] | None = None) -> str:
    """Aligned plain-text table; with ``weights`` (a parsed ``--mix``) also each one's share."""
    rows = entries(weights)
    head = ["operation", "kind", "tables", "weight"] + (["share"] if weights else [])
    body = [
        [
            r["name"],
            r["kind"],
            ", ".join(r["tables"]),
            f"{r['weight']:g}",
            *([f"{100 * r['share']:.1f} %"] if weights else []),
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    numeric = {3, 4}
    lines = []
    for line, row in zip([head, *body], [None, *rows], strict=True):
        cells = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(cells) + "  " + (row["description"] if row else "description"))
    by_kind = {k: sum(r["weight"] for r in rows if r["kind"] == k) for k in KINDS}
    lines.append("")
    lines.append(
        f"{len(rows)} operations; weights are relative ("
        + ", ".join(f"{k}s {v:g}" for k, v in by_kind.items())
        + "). `loadgen stream --mix` takes kinds (insert=70,update=30) or these names."
    )
    return "\n".join(lines)


def markdown_table() -> str:
    """The Markdown table of docs/operations.md (between ``BEGIN`` and ``END``)."""
    lines = [
        "| operation | kind | writes | default weight | what it does |",
        "|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        lines.append(
            f"| `{op.name}` | {op.kind} | {', '.join(op.tables)} | {op.default_weight:g} "
            f"| {op.description} |"
        )
    return "\n".join(lines)


def splice(doc: str) -> str:
    """``doc`` with the text between its marker lines replaced by ``markdown_table()``.

    Raises:
        ValueError: a marker line is missing, or they are out of order.
    """
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise ValueError(f"markers not found: put {BEGIN!r} and {END!r} on lines of their own")
    return doc[: start + len(BEGIN)] + "\n" + markdown_table() + "\n" + doc[end:]


def main(argv: Sequence[str]) -> int:
    """``python -m loadgen.ops.catalog PATH [--check]``: rewrite PATH's table, or with
    ``--check`` exit 1 (and say so) when it differs from the registry. Exit 2 on bad usage."""
    args = [a for a in argv if a != "--check"]
    if len(args) != 1:
        print("usage: python -m loadgen.ops.catalog PATH [--check]", file=sys.stderr)
        return 2
    path = Path(args[0])
    try:
        doc = path.read_text(encoding="utf-8")
        new = splice(doc)
    except (OSError, ValueError) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    if "--check" in argv:
        if new != doc:
            print(
                f"{path}: the operations table differs from the registry; run `make docs`",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != doc:
        path.write_text(new, encoding="utf-8")
        print(f"{path}: operations table updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
