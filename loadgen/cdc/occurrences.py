"""Occurrence ranks of captured changes: a change's rank among its transaction's changes of
the same row and op, the last part of the verifier's match key (``verify``).

A rank by arrival is what pgoutput needs; a source that redelivers (Debezium, at least once)
needs a redelivered change to keep the rank of its first delivery, so ranks follow positions:
a position seen before in the group keeps its first rank. Only groups the ledger says hold two
or more changes come here (``Verifier.flush`` finds them), so the memory is theirs alone.
Used by the verifier's thread.
"""

from __future__ import annotations

from typing import Any

OCCURRENCE_WINDOW = 50_000  # multi-change groups remembered for redeliveries (x2 generations)


class Occurrences:
    """Rank of a change among its transaction's changes of one row and op, by arrival; a
    position seen before keeps its first rank (a redelivery). Only groups the ledger says have
    more than one change come here. Two generations of ``window`` groups each: a redelivery
    from further back that replays only part of such a group can be mis-ranked."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.cur: dict[int, Any] = {}  # group key_hash → its position, or positions by arrival
        self.prev: dict[int, Any] = {}

    def ranks(self, keys: list[int], positions: list[int]) -> list[int]:
        """The rank of each (group ``key``, ``position``), in order. Hot for multi-change
        groups: a group seen once keeps its position as an int, a list from the second."""
        out: list[int] = []
        append = out.append
        cur, prev, window = self.cur, self.prev, self.window
        for key, position in zip(keys, positions, strict=True):
            seen = cur.get(key)
            if seen is None:
                seen = prev.pop(key, None) if prev else None
                if seen is None:
                    cur[key] = position
                    append(0)
                    if len(cur) > window:
                        self.prev, self.cur = cur, {}
                        cur, prev = self.cur, self.prev
                    continue
                cur[key] = seen
            if type(seen) is int:
                if seen == position:
                    append(0)
                else:
                    cur[key] = [seen, position]
                    append(1)
            elif position in seen:
                append(seen.index(position))
            else:
                append(len(seen))
                seen.append(position)
        return out
