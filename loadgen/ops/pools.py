"""Candidate pools: the rows one worker may update or delete, with tentative changes.

A worker owns its candidates (``id % num_workers == worker_id`` at load time, plus the rows it
inserts itself), so no two workers ever pick the same row. Every change made while a
transaction is open is tentative: ``commit()`` confirms it, ``rollback()`` undoes it, so a
retried transaction sees exactly the state it saw the first time.

A shard of a split run (``loadgen.shards``, ``residue=(I, N)``) keeps only ids with
``id % N == I`` of the rows its workers insert: the other shards may claim the rest (as rows
present when they start), so no two shards ever hold the same row.

Pools stop growing at ``MAX_POOL_ROWS``: rows inserted beyond that are simply not candidates
(rows loaded at start are all kept), so a worker's memory stays flat over long runs.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

MAX_POOL_ROWS = 10_000  # candidates a pool grows to through inserts; more are not tracked


class IdPool:
    """Ids available to an operation. Takes are removed at once; adds appear after commit.

    Picks are uniform (swap-remove in O(1)); never ``ORDER BY random()``.
    """

    def __init__(self, ids: Iterable[int] = (), *, residue: tuple[int, int] = (0, 1)) -> None:
        self._ids: list[int] = list(ids)
        self._index, self._modulus = residue  # adds with another id % modulus are not kept
        self._taken: list[int] = []  # taken since the last commit/rollback; back on rollback
        self._added: list[int] = []  # added since the last commit/rollback; in on commit

    def __len__(self) -> int:
        return len(self._ids)

    def take(self, rnd: random.Random) -> int:
        """Remove and return a random id. Raises IndexError when empty."""
        ids = self._ids
        i = rnd.randrange(len(ids))
        ids[i], ids[-1] = ids[-1], ids[i]
        taken = ids.pop()
        self._taken.append(taken)
        return taken

    def sample(self, rnd: random.Random) -> int:
        """Return a random id without removing it (for repeatable updates)."""
        return self._ids[rnd.randrange(len(self._ids))]

    def add(self, row_id: int) -> None:
        if row_id % self._modulus == self._index:
            self._added.append(row_id)

    def commit(self) -> None:
        room = MAX_POOL_ROWS - len(self._ids)
        if room > 0:
            self._ids.extend(self._added[:room])
        self._added.clear()
        self._taken.clear()

    def has_room(self, num_rows: int = 1) -> bool:
        """Whether ``num_rows`` more committed adds would be kept."""
        return len(self._ids) + len(self._added) + num_rows <= MAX_POOL_ROWS

    def rollback(self) -> None:
        self._ids.extend(self._taken)
        self._added.clear()
        self._taken.clear()


class DatedPool:
    """Ids with a timestamp: those due (timestamp <= now) are ``due``; the rest wait in a heap.

    Times are naive ``datetime`` in UTC, as psycopg loads the ``timestamp`` columns (and as
    datagen's rows carry them). ``refresh(now)`` moves rows whose time has come into ``due``.
    """

    def __init__(
        self,
        rows: Iterable[tuple[datetime, int]] = (),
        *,
        residue: tuple[int, int] = (0, 1),
        now: datetime | None = None,
    ) -> None:
        """``now``: rows dated at or before it start in ``due`` (as ``refresh(now)`` would put
        them, in the same order, without popping them from a heap one by one)."""
        self.due = IdPool()
        self._index, self._modulus = residue  # adds with another id % modulus are not kept
        self._future: list[tuple[datetime, int]] = list(rows)
        if now is not None:
            future = self._future
            future.sort()  # rows already in (time, id) order (the usual load): one pass
            k = bisect.bisect_right(future, now, key=lambda row: row[0])
            self.due._ids.extend(row_id for _, row_id in future[:k])
            del future[:k]  # what is left is sorted: a heap already
        else:
            heapq.heapify(self._future)
        self._popped: list[tuple[datetime, int]] = []  # future rows taken; back on rollback
        self._added: list[tuple[datetime, int]] = []

    def __len__(self) -> int:
        return len(self.due) + len(self._future)

    @property
    def num_future(self) -> int:
        return len(self._future)

    def refresh(self, now: datetime) -> None:
        """Move every row dated at or before ``now`` into ``due`` (committed state only)."""
        future = self._future
        due_ids = self.due._ids
        while future and future[0][0] <= now:
            due_ids.append(heapq.heappop(future)[1])

    def take_soonest_future(self) -> tuple[datetime, int]:
        """Remove and return the future row with the earliest time. Raises IndexError."""
        item = heapq.heappop(self._future)
        self._popped.append(item)
        return item

    def take_due_first(self, rnd: random.Random) -> int:
        """Remove and return a random due id, else the soonest future one. Raises IndexError."""
        return self.due.take(rnd) if len(self.due) else self.take_soonest_future()[1]

    def add(self, when: datetime, row_id: int) -> None:
        if row_id % self._modulus == self._index:
            self._added.append((when, row_id))

    def commit(self) -> None:
        for item in self._added[: max(0, MAX_POOL_ROWS - len(self))]:
            heapq.heappush(self._future, item)
        self._added.clear()
        self._popped.clear()
        self.due.commit()

    def rollback(self) -> None:
        for item in self._popped:
            heapq.heappush(self._future, item)
        self._added.clear()
        self._popped.clear()
        self.due.rollback()


class _IndexedSet:
    """A set of ints with O(1) add, discard and uniform random sample."""

    def __init__(self) -> None:
        self._items: list[int] = []
        self._index: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: int) -> None:
        if item not in self._index:
            self._index[item] = len(self._items)
            self._items.append(item)

    def add_many(self, items: Iterable[int]) -> None:
        """``add`` each of ``items``, in order (one dict update, not a call per item)."""
        new = [item for item in dict.fromkeys(items) if item not in self._index]
        start = len(self._items)
        self._items.extend(new)
        self._index.update(zip(new, range(start, start + len(new)), strict=True))

    def discard(self, item: int) -> None:
        i = self._index.pop(item, None)
        if i is None:
            return
        last = self._items.pop()
        if last != item:
            self._items[i] = last
            self._index[last] = i

    def sample(self, rnd: random.Random) -> int:
        return self._items[rnd.randrange(len(self._items))]


class LinkState:
    """The pacientes_convenios links of the pacientes one worker owns.

    Links are owned by their paciente (``paciente_id % num_workers``, or pacientes the worker
    inserted), so one worker knows every link of its pacientes and adds (paciente, convenio)
    pairs that are unique by construction. Each paciente has a bitmask of linked convenios
    (bit i = ``convenio_ids[i]``). A deleted link frees its pair only after commit, so a
    transaction never deletes and re-adds the same pair.
    """

    def __init__(self, convenio_ids: list[int], *, residue: tuple[int, int] = (0, 1)) -> None:
        self.convenio_ids = convenio_ids
        self._index, self._modulus = residue  # pacientes with another id % modulus: not owned
        self._bit = {cid: i for i, cid in enumerate(convenio_ids)}
        self._full = (1 << len(convenio_ids)) - 1
        self._masks: dict[int, int] = {}  # paciente id -> bitmask of linked convenios
        self._open = _IndexedSet()  # owned pacientes with at least one free convenio
        self.links = IdPool()  # link ids (deletable)
        self._link_pair: dict[int, tuple[int, int]] = {}  # link id -> (paciente, convenio)
        # load_many's links, rows (link, paciente, convenio) sorted by link id: read only when
        # one is deleted (``_pop_pair``), so loading builds no dict entry per link
        self._loaded_pairs = np.empty((0, 3), dtype=np.int64)
        self._loaded_gone: set[int] = set()  # ids of deleted _loaded_pairs rows
        self.num_free = 0  # (paciente, convenio) pairs not linked yet
        self._set_bits: list[tuple[int, int]] = []  # tentative picks: undone on rollback
        self._new_links: list[tuple[int, int, int]] = []  # (link, paciente, convenio)
        self._new_pacientes: list[int] = []

    def load_paciente(self, paciente_id: int) -> None:
        """Own a committed paciente (loading only; its links follow via ``load_link``)."""
        self._masks[paciente_id] = 0
        self._open.add(paciente_id)
        self.num_free += len(self.convenio_ids)

    def load_many(
        self, paciente_ids: Sequence[int] | np.ndarray, links: Sequence[Sequence[int]] | np.ndarray
    ) -> None:
        """``load_paciente`` for each of ``paciente_ids``, then ``load_link`` for each
        ``(link_id, paciente_id, convenio_id)`` of ``links`` (loading only; the same state,
        built on whole columns: with distinct pacientes and at most 62 convenios the masks are
        computed by numpy, ~10x faster than a dict operation per link at scale 50).

        Raises:
            KeyError: a link's paciente is not in ``paciente_ids``, or its convenio is not
                one of ``convenio_ids``.
        """
        pacientes = np.asarray(paciente_ids, dtype=np.int64).reshape(-1)
        table = np.asarray(links, dtype=np.int64).reshape(-1, 3)
        if len(self.convenio_ids) > 62 or not _distinct(pacientes):
            self._load_many_by_row(pacientes.tolist(), table.tolist())
            return
        convenios = np.asarray(self.convenio_ids, dtype=np.int64)
        masks = np.zeros(len(pacientes), dtype=np.int64)
        if len(table):
            bits = _positions(convenios, table[:, 2], "convenio")
            owners = _positions(pacientes, table[:, 1], "paciente")
            np.bitwise_or.at(masks, owners, np.left_shift(1, bits))
        self.links._ids.extend(table[:, 0].tolist())
        loaded = np.concatenate([self._loaded_pairs, table]) if len(self._loaded_pairs) else table
        if len(loaded) > 1 and not bool((loaded[1:, 0] > loaded[:-1, 0]).all()):
            loaded = loaded[np.argsort(loaded[:, 0], kind="stable")]
        self._loaded_pairs = loaded
        num_convenios = len(self.convenio_ids)
        self.num_free += int(num_convenios * len(masks) - np.bitwise_count(masks).sum())
        self._masks.update(zip(pacientes.tolist(), masks.tolist(), strict=True))
        self._open.add_many(pacientes[masks != self._full].tolist())

    def _load_many_by_row(self, paciente_ids: list[int], links: list[list[int]]) -> None:
        bit = self._bit
        masks = dict.fromkeys(paciente_ids, 0)
        pair = self._link_pair
        for link_id, paciente_id, convenio_id in links:
            masks[paciente_id] |= 1 << bit[convenio_id]  # KeyError: not an owned paciente
            pair[link_id] = (paciente_id, convenio_id)
        self.links._ids.extend(link[0] for link in links)
        full, num_convenios = self._full, len(self.convenio_ids)
        self.num_free += sum(num_convenios - mask.bit_count() for mask in masks.values())
        self._masks.update(masks)
        self._open.add_many(paciente_id for paciente_id, mask in masks.items() if mask != full)

    def load_link(self, link_id: int, paciente_id: int, convenio_id: int) -> None:
        """Record a committed link of an owned paciente (loading only)."""
        self._set(paciente_id, self._bit[convenio_id])
        self.links._ids.append(link_id)
        self._link_pair[link_id] = (paciente_id, convenio_id)

    def _pop_pair(self, link_id: int) -> tuple[int, int]:
        """The (paciente, convenio) of a known link, forgotten (KeyError: an unknown link)."""
        pair = self._link_pair.pop(link_id, None)
        if pair is not None:
            return pair
        ids = self._loaded_pairs[:, 0]
        i = int(np.searchsorted(ids, link_id))
        if i == len(ids) or ids[i] != link_id or link_id in self._loaded_gone:
            raise KeyError(link_id)
        self._loaded_gone.add(link_id)
        return int(self._loaded_pairs[i, 1]), int(self._loaded_pairs[i, 2])

    def pairs(self) -> dict[int, tuple[int, int]]:
        """Every known link's (paciente, convenio), by link id (a copy; for tests, O(links))."""
        loaded = self._loaded_pairs
        rows = zip(loaded[:, 1].tolist(), loaded[:, 2].tolist(), strict=True)
        pairs = dict(zip(loaded[:, 0].tolist(), rows, strict=True))
        for link_id in self._loaded_gone:
            del pairs[link_id]
        pairs.update(self._link_pair)
        return pairs

    def _set(self, paciente_id: int, i: int) -> None:
        mask = self._masks[paciente_id]
        if not mask >> i & 1:
            self._masks[paciente_id] = mask | 1 << i
            self.num_free -= 1
            if self._masks[paciente_id] == self._full:
                self._open.discard(paciente_id)

    def _clear(self, paciente_id: int, i: int) -> None:
        mask = self._masks[paciente_id]
        if mask >> i & 1:
            self._masks[paciente_id] = mask & ~(1 << i)
            self.num_free += 1
            self._open.add(paciente_id)

    def pick_new_pair(self, rnd: random.Random) -> tuple[int, int]:
        """Reserve a (paciente, convenio) pair not linked yet. Raises IndexError when none."""
        if not len(self._open):
            raise IndexError("no free (paciente, convenio) pair")
        paciente_id = self._open.sample(rnd)
        mask = self._masks[paciente_id]
        free = [i for i in range(len(self.convenio_ids)) if not mask >> i & 1]
        i = free[rnd.randrange(len(free))]
        self._set(paciente_id, i)
        self._set_bits.append((paciente_id, i))
        return paciente_id, self.convenio_ids[i]

    def add_paciente(self, paciente_id: int) -> None:
        """Own a paciente inserted in the open transaction (joins on commit; only this
        shard's: ``paciente_id % modulus == index``)."""
        if paciente_id % self._modulus == self._index:
            self._new_pacientes.append(paciente_id)

    def link_inserted(self, link_id: int, paciente_id: int, convenio_id: int) -> None:
        """A link inserted in the open transaction (joins on commit)."""
        self._new_links.append((link_id, paciente_id, convenio_id))

    def commit(self) -> None:
        for paciente_id in self._new_pacientes:
            if len(self._masks) < MAX_POOL_ROWS:
                self.load_paciente(paciente_id)
        for link_id, paciente_id, convenio_id in self._new_links:
            if paciente_id not in self._masks:  # a new paciente beyond MAX_POOL_ROWS
                continue
            self._set(paciente_id, self._bit[convenio_id])  # no-op for pick_new_pair pairs
            if self.links.has_room():
                self.links.add(link_id)
                self._link_pair[link_id] = (paciente_id, convenio_id)
        for link_id in self.links._taken:  # deleted links free their pair
            paciente_id, convenio_id = self._pop_pair(link_id)
            self._clear(paciente_id, self._bit[convenio_id])
        self.links.commit()
        self._set_bits.clear()
        self._new_links.clear()
        self._new_pacientes.clear()

    def rollback(self) -> None:
        for paciente_id, i in reversed(self._set_bits):
            self._clear(paciente_id, i)
        self.links.rollback()
        self._set_bits.clear()
        self._new_links.clear()
        self._new_pacientes.clear()


def _positions(keys: np.ndarray, values: np.ndarray, what: str) -> np.ndarray:
    """For each of ``values``, its index in ``keys`` (distinct). Raises KeyError for a value
    that is not one of ``keys``."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    at = np.minimum(np.searchsorted(ranked, values), max(len(keys) - 1, 0))
    missing = ranked[at] != values if len(keys) else np.ones(len(values), dtype=bool)
    if missing.any():
        raise KeyError(f"{what} {int(values[np.argmax(missing)])} is not known")
    return order[at]


def _distinct(values: np.ndarray) -> bool:
    """Whether no value occurs twice (a sorted array, the usual case, is checked in place)."""
    ranked = values if bool((values[1:] > values[:-1]).all()) else np.sort(values)
    return bool((ranked[1:] != ranked[:-1]).all())
