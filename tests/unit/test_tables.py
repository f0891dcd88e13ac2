"""The table specs agree with the DDL in sql/01_schema.sql and the keys in sql/02_keys.sql."""

import re

from loadgen import schema, tables


def _ddl_columns() -> dict[str, list[str]]:
    ddl = schema.read_sql("01_schema.sql")
    out: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", ddl, re.S):
        cols = []
        for line in body.splitlines():
            match = re.match(r"\s+([a-z_]+)\s+[A-Z]", line)
            if match and match.group(1) not in ("CHECK", "UNIQUE"):
                cols.append(match.group(1))
        out[name] = cols
    return out


def test_specs_cover_every_ddl_column() -> None:
    ddl = _ddl_columns()
    assert list(ddl) == list(tables.TABLE_NAMES)
    for spec in tables.TABLES:
        assert list(spec.columns) + list(spec.server_columns) == ddl[spec.name], spec.name


def test_fk_order_parents_first() -> None:
    seen: set[str] = set()
    for spec in tables.TABLES:
        assert all(fk.parent in seen for fk in spec.foreign_keys), spec.name
        seen.add(spec.name)


def test_keys_file_agrees_with_the_specs() -> None:
    """sql/02_keys.sql: a primary key on id per table, the specs' natural keys as UNIQUEs and
    their foreign keys, named as PostgreSQL names the inline forms (what older schemas have)."""
    keys = schema.key_constraints()
    assert {k.table for k in keys if k.kind == "PRIMARY KEY"} == set(tables.TABLE_NAMES)
    assert all(k.name == f"{k.table}_pkey" for k in keys if k.kind == "PRIMARY KEY")
    uniques = {
        k.name: (k.table, tuple(c.strip() for c in k.definition[len("UNIQUE (") : -1].split(",")))
        for k in keys
        if k.kind == "UNIQUE"
    }
    assert set(uniques.values()) == {(t.name, nk) for t in tables.TABLES for nk in t.natural_keys}
    assert all(name == f"{t}_{'_'.join(cols)}_key" for name, (t, cols) in uniques.items())
    fks = {
        (k.table, k.definition.split("(")[1].split(")")[0], k.parent)
        for k in keys
        if k.kind == "FOREIGN KEY"
    }
    assert fks == {(t.name, fk.column, fk.parent) for t in tables.TABLES for fk in t.foreign_keys}
