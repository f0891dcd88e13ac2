"""Default slot and publication names per schema: two loadgen schemas in one database (each
selected with ``search_path``) must not share the verifier's slot or the publication.

Slots and publications are per database (slot names even per server), so a fixed default
would make the second schema's ``cdc setup`` reuse the first's slot and add its tables to the
first's publication. The rule: a name that no layer sets (flag, ``LOADGEN_CDC_*``,
config/settings.toml) is its default in schema ``public`` — ``loadgen_verify``,
``loadgen_pub``, ``loadgen_debezium``, unchanged, so existing setups keep working — and the
default with ``_<schema>`` appended in any other schema (``loadgen_verify_clinic_a``). A
derived name must be valid (a slot: lowercase letters, digits and ``_``, at most 63
characters; a publication: a plain identifier of at most 63 bytes): when the schema's name
does not allow it (upper case, other characters, too long) the command stops with exit 2
naming the flag that fixes it. A name given explicitly is used as given, in any schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace

import psycopg

from loadgen import db
from loadgen.cdc import names
from loadgen.cdc.slot_state import schemas_recording
from loadgen.config import CdcConfig, Settings
from loadgen.errors import ConfigError, SchemaMissingError

PUBLIC = "public"
KEYS = ("slot", "publication", "debezium_slot")  # the names derived from the schema
FLAGS = {"slot": "--slot", "publication": "--publication", "debezium_slot": "--slot"}
DEFAULTS = {f.name: str(f.default) for f in fields(CdcConfig) if f.name in KEYS}


def derived(key: str, schema: str) -> str:
    """The default of ``key`` in ``schema`` (not checked)."""
    return DEFAULTS[key] if schema == PUBLIC else f"{DEFAULTS[key]}_{schema}"


def for_schema(settings: Settings, schema: str | None, keys: tuple[str, ...] = KEYS) -> CdcConfig:
    """``settings.cdc`` with each of ``keys`` that no layer set replaced by its default in
    ``schema`` (None: no current schema, names left as they are: the command's own check
    says what is wrong).

    Raises:
        ConfigError: a derived name is not a valid slot or publication name (exit 2), naming
            the schema, the name and the flag (or setting) that fixes it.
    """
    cdc = settings.cdc
    if schema is None or schema == PUBLIC:
        return cdc
    changes = {}
    for key in keys:
        if settings.is_set("cdc", key):
            continue
        name = derived(key, schema)
        try:
            if key == "publication":
                names.check_publication(name, "default publication")
            else:
                names.check_slot(name, "default slot")
        except ConfigError as exc:
            raise ConfigError(
                f"schema {schema!r}: {exc}; outside schema public the default name carries the"
                f" schema's: give {FLAGS[key]} NAME (or set cdc.{key})"
            ) from None
        changes[key] = name
    return replace(cdc, **changes)


def resolve(
    conn: psycopg.Connection, settings: Settings, keys: tuple[str, ...] = KEYS
) -> CdcConfig:
    """``for_schema`` in ``conn``'s current schema. Raises ConfigError (as ``for_schema``)."""
    return for_schema(settings, db.current_schema(conn), keys)


def verifier_slot(settings: Settings, schema: str | None) -> str | None:
    """The verifier's slot in ``schema`` (None: its default is no valid name there, so no
    such slot can exist), for commands that only must not take it (Debezium's)."""
    try:
        return for_schema(settings, schema, ("slot",)).slot
    except ConfigError:
        return None


def legacy_hint(
    conn: psycopg.Connection, settings: Settings, *, after_setup: bool = False
) -> str | None:
    """When the verifier's slot or publication was derived from the schema: whether the old
    fixed default exists and is this schema's (the slot recorded in its ``loadgen_cdc_state``,
    the publication publishing its tables): a setup made before names followed the schema.
    For a derived name found missing, or (``after_setup``) for a setup that just created the
    schema's own. None when there is nothing to say."""
    schema = db.current_schema(conn)
    if schema is None or schema == PUBLIC:
        return None
    found = []
    slot, pub = DEFAULTS["slot"], DEFAULTS["publication"]
    if not settings.is_set("cdc", "slot") and schema in schemas_recording(conn, slot):
        found.append(f"--slot {slot}")  # (set up for this schema: its state table says so)
    if (
        not settings.is_set("cdc", "publication")
        and conn.execute(
            "SELECT 1 FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s",
            (pub, schema),
        ).fetchone()
    ):
        found.append(f"--publication {pub}")
    if not found:
        return None
    ours = f"{derived('slot', schema)}, {derived('publication', schema)}"
    if after_setup:
        return (
            f"outside schema public the default names carry the schema's ({ours}); the old"
            f" defaults exist here too ({' '.join(found)}): unused, a slot pins WAL — drop them"
            f" with `loadgen cdc teardown {' '.join(found)}`"
        )
    return (
        f"outside schema public the default names carry the schema's ({ours}); the old"
        f" defaults exist here: pass {' '.join(found)} to use them (a setup made before names"
        " followed the schema), or run `loadgen cdc setup` for this schema's own"
    )


@contextmanager
def hinted(conn: psycopg.Connection, settings: Settings) -> Iterator[None]:
    """A missing slot or publication (SchemaMissingError, exit 3) gets ``legacy_hint``."""
    try:
        yield
    except SchemaMissingError as exc:
        try:
            hint = legacy_hint(conn, settings)
        except psycopg.Error:  # (the connection is gone: the error as it is)
            hint = None
        if hint is None:
            raise
        raise SchemaMissingError(f"{exc}; {hint}") from exc
