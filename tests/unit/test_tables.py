"""The table specs agree with the DDL in sql/01_schema.sql."""

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
