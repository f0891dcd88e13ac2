"""Lines of a Debezium event file: one document each (value, ``KEY<TAB>VALUE``, the
``schema``/``payload`` envelope, ``null`` tombstones), and whether a file is one at all."""

from __future__ import annotations

from typing import Any

import orjson

from loadgen.errors import ConfigError

_SNIFF_LINES = 50  # lines read to decide whether a file holds Debezium events at all


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The value document of one dump line; None for a tombstone. Raises ValueError."""
    raw = raw.strip()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        key, sep, value = raw.partition(b"\t")  # "key<TAB>value" (print.key=true)
        if not sep:
            raise ValueError("not JSON") from None
        doc = orjson.loads(value)
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if "payload" in doc and "schema" in doc:
        doc = doc["payload"]
        if doc is not None and not isinstance(doc, dict):
            raise ValueError("payload is not a JSON object")
    return doc


def _is_debezium(doc: dict[str, Any] | None) -> bool:
    """A change event, heartbeat, transaction-metadata event, or tombstone."""
    return (
        doc is None
        or ("op" in doc and "source" in doc)
        or set(doc) <= {"ts_ms", "ts_us", "ts_ns"}
        or ("status" in doc and "id" in doc)
    )


def sniff(path: str) -> None:
    """Raise ConfigError unless ``path`` looks like a file of Debezium events (empty is fine).

    Looks at the first non-empty lines: binary data, a line that is not JSON, or only JSON
    documents that are not Debezium's is not an event file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError as exc:
        raise ConfigError(f"--debezium {path!r}: {exc.strerror or exc}") from exc
    if b"\x00" in head:
        raise ConfigError(f"--debezium {path!r}: a binary file, not Debezium change events")
    lines = [ln for ln in head.split(b"\n")[:-1] if ln.strip()][:_SNIFF_LINES]
    for i, raw in enumerate(lines, start=1):
        try:
            if _is_debezium(parse_line(raw)):
                return
        except (ValueError, orjson.JSONDecodeError):
            raise ConfigError(
                f"--debezium {path!r}: not Debezium change events (line {i} is not JSON)"
            ) from None
    if lines:
        raise ConfigError(
            f"--debezium {path!r}: not Debezium change events (no line is a change event,"
            " heartbeat or tombstone)"
        )
