"""Write what a test needs to read a sample's events without a database: ``context.json``.

Usage: python dump_context.py DSN OUT_DIR (DSN's search_path selects the sample's schema).

``columns`` holds, per table of the schema, what ``loadgen.cdc.rows.column_types``
reads from the catalog (name, type name, typmod, element type name of an array);
``partition_roots`` what ``loadgen.cdc.slot_feed.partition_roots`` returns for tables;
``replica_identity`` per table; ``tables`` the final contents (PostgreSQL text output under
loadgen's pinned session settings, NULL as null), ordered by id, for the final-state check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from psycopg import sql

from loadgen import db
from loadgen.cdc.slot_feed import partition_roots
from loadgen.schema import table_columns


def main(dsn: str, out_dir: str) -> None:
    with db.connect(dsn, autocommit=True) as conn:
        schema = str(conn.execute("SELECT current_schema()").fetchone()[0])  # type: ignore[index]
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        rels = conn.execute(
            "SELECT c.relname, c.relreplident, c.relkind FROM pg_class c"
            " WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')"
            " ORDER BY 1"
        ).fetchall()
        columns: dict[str, list[dict[str, object]]] = {}
        identity: dict[str, str] = {}
        contents: dict[str, dict[str, object]] = {}
        # partition_roots also lists partitioned indexes' partitions: keep the tables
        tables_here = {str(r[0]) for r in rels}
        roots = {k: v for k, v in partition_roots(conn).items() if k in tables_here}
        for name, ident, _kind in rels:
            rows = conn.execute(
                "SELECT a.attname, t.typname, a.atttypmod, e.typname FROM pg_attribute a"
                " JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type e ON e.oid = t.typelem"
                " AND t.typcategory = 'A' WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0"
                " AND NOT a.attisdropped ORDER BY a.attnum",
                (sql.Identifier(name).as_string(conn),),
            ).fetchall()
            columns[name] = [
                {"name": n, "type": t, "typmod": m, "element": e} for n, t, m, e in rows
            ]
            identity[name] = {"d": "default", "f": "full", "i": "index", "n": "nothing"}[ident]
            if name == "loadgen_cdc_state":
                continue
            cols = table_columns(conn, name)
            if "id" not in cols or name in roots:  # a partition: its rows are in the root
                continue
            q = sql.SQL("SELECT {} FROM {} ORDER BY id").format(
                sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in cols),
                sql.Identifier(name),
            )
            contents[name] = {"columns": cols, "rows": [list(r) for r in conn.execute(q)]}
        doc = {
            "schema": schema,
            "server_version": version,
            "columns": columns,
            "partition_roots": roots,
            "replica_identity": identity,
            "tables": contents,
        }
    Path(out_dir, "context.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
