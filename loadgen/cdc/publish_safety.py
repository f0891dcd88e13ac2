"""Before ``cdc setup --all-tables``: would publishing every table break the user's own?

A publication that publishes UPDATE and DELETE (``FOR ALL TABLES`` does) makes the server
refuse those statements on every published table without a replica identity: ``REPLICA
IDENTITY NOTHING``, the default identity on a table without a primary key, or an identity
index that is gone ("cannot update table ... because it does not have a replica identity and
publishes updates"). Unlogged and temporary tables are never published. Nothing safe can be
done for such tables without changing them, so setup refuses before it creates anything and
names them with the fixes. Read-only; runs in the CLI's process.

``require_not_shared``: nor may setup put a second loadgen schema into a publication or a slot
another schema's setup made (``docs/cdc.md``, names per schema).
"""

from __future__ import annotations

import psycopg

from loadgen import db, tables
from loadgen.cdc.slot_read import STATE_TABLE
from loadgen.cdc.slot_state import schemas_recording
from loadgen.errors import ConfigError, SchemaMissingError

MAX_NAMED = 10  # tables named in the message; the rest are counted

_UNWRITABLE = """
SELECT format('%I.%I', n.nspname, c.relname),
       CASE c.relreplident WHEN 'n' THEN 'REPLICA IDENTITY NOTHING'
                           WHEN 'i' THEN 'its replica identity index is gone'
                           ELSE 'no primary key' END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
  AND (c.relreplident = 'n'
       OR (c.relreplident = 'd' AND NOT EXISTS
             (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
       OR (c.relreplident = 'i' AND NOT EXISTS
             (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident)))
ORDER BY 1
"""


def unwritable_if_all_published(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """``(schema.table, why)`` of every table of this database on which UPDATE and DELETE
    would fail once a ``FOR ALL TABLES`` publication publishes them."""
    return [(str(name), str(why)) for name, why in conn.execute(_UNWRITABLE).fetchall()]


def require_all_tables_safe(conn: psycopg.Connection, publication: str) -> None:
    """Refuse ``--all-tables`` when creating the publication would make any table refuse
    UPDATE/DELETE (a publication that already exists is kept as it is: nothing to check).

    Raises:
        SchemaMissingError: naming the tables, why, and the fixes (exit 3); nothing created.
    """
    exists = conn.execute(
        "SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)
    ).fetchone()
    if exists:
        return
    found = unwritable_if_all_published(conn)
    if not found:
        return
    named = ", ".join(f"{name} ({why})" for name, why in found[:MAX_NAMED])
    more = f" and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else ""
    raise SchemaMissingError(
        f"cdc setup --all-tables: refused, nothing created: publication {publication!r} FOR ALL"
        f" TABLES would make UPDATE and DELETE fail on {len(found)} table(s) without a replica"
        f" identity: {named}{more}; give each a primary key or ALTER TABLE ... REPLICA IDENTITY"
        " FULL (or USING INDEX), or leave out --all-tables to publish only loadgen's tables"
    )


def require_not_shared(conn: psycopg.Connection, publication: str, slot: str) -> None:
    """Refuse a ``cdc setup`` that would share another schema's publication or slot: two
    loadgen schemas of one database in one stream (the tables of both published together, or
    one slot consumed for both). A ``FOR ALL TABLES`` publication is shared by design.

    Raises:
        ConfigError: naming the other schema and the flags that fix it (exit 2); nothing
            changed.
    """
    schema = str(db.current_schema(conn))
    fix = (
        f"give schema {schema} its own: --publication NAME --slot NAME (or cdc.publication,"
        " cdc.slot); without them, a schema other than public gets <default>_<schema>"
    )
    rows = conn.execute(
        "SELECT DISTINCT t.schemaname FROM pg_publication p"
        " JOIN pg_publication_tables t ON t.pubname = p.pubname"
        " WHERE p.pubname = %s AND NOT p.puballtables AND t.schemaname <> %s"
        " AND t.tablename = ANY (%s) ORDER BY 1",
        (publication, schema, list(tables.TABLE_NAMES)),
    ).fetchall()
    if rows:
        others = ", ".join(str(r[0]) for r in rows)
        raise ConfigError(
            f"--publication {publication!r} already publishes the loadgen tables of schema"
            f" {others}: adding {schema}'s would mix both schemas' changes in one stream; {fix}"
        )
    owners = [s for s in schemas_recording(conn, slot) if s != schema]
    if owners:
        raise ConfigError(
            f"--slot {slot!r} was set up for schema {', '.join(owners)} (its {STATE_TABLE}):"
            f" sharing it would mix both schemas' changes in one stream; {fix}"
        )
