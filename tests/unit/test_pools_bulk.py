"""``LinkState.load_many`` (issue 11: a worker loads its links in one pass) builds the state
that ``load_paciente`` + ``load_link`` per row build."""

from __future__ import annotations

import random

import pytest

from loadgen.ops.pools import LinkState

CONVENIOS = [3, 5, 8, 13]


def _random_links(rnd: random.Random, pacientes: list[int]) -> list[tuple[int, int, int]]:
    links, link_id = [], 100
    for paciente_id in pacientes:
        for convenio_id in rnd.sample(CONVENIOS, rnd.randint(0, len(CONVENIOS))):
            links.append((link_id, paciente_id, convenio_id))
            link_id += 1
    rnd.shuffle(links)
    return links


@pytest.mark.parametrize("seed", range(5))
def test_load_many_equals_loading_row_by_row(seed: int) -> None:
    rnd = random.Random(seed)
    pacientes = rnd.sample(range(1, 10_000), 300)
    links = _random_links(rnd, pacientes)
    one_by_one, bulk = LinkState(CONVENIOS), LinkState(CONVENIOS)
    for paciente_id in pacientes:
        one_by_one.load_paciente(paciente_id)
    for link in links:
        one_by_one.load_link(*link)
    bulk.load_many(pacientes, links)

    assert bulk._masks == one_by_one._masks
    assert bulk.num_free == one_by_one.num_free
    assert sorted(bulk._open._items) == sorted(one_by_one._open._items)
    assert all(bulk._open._items[i] == p for p, i in bulk._open._index.items())
    assert len(bulk._open._index) == len(bulk._open._items)
    assert bulk.links._ids == one_by_one.links._ids
    assert bulk.pairs() == one_by_one.pairs()
    # and it behaves the same afterwards: every free pair can be picked exactly once
    picked = set()
    while True:
        try:
            picked.add(bulk.pick_new_pair(rnd))
        except IndexError:
            break
    assert len(picked) == one_by_one.num_free


def test_load_many_refuses_a_link_of_a_paciente_not_owned() -> None:
    state = LinkState(CONVENIOS)
    with pytest.raises(KeyError):
        state.load_many([1, 2], [(10, 3, 5)])


@pytest.mark.parametrize("seed", range(3))
def test_load_many_from_arrays_equals_loading_row_by_row(seed: int) -> None:
    """The worker passes numpy columns (Candidates.load); same state as row by row."""
    import numpy as np

    rnd = random.Random(seed)
    pacientes = sorted(rnd.sample(range(1, 10_000), 300))
    links = _random_links(rnd, pacientes)
    one_by_one, bulk = LinkState(CONVENIOS), LinkState(CONVENIOS)
    for paciente_id in pacientes:
        one_by_one.load_paciente(paciente_id)
    for link in links:
        one_by_one.load_link(*link)
    bulk.load_many(np.array(pacientes, np.int64), np.array(links, np.int64).reshape(-1, 3))
    by_dict = LinkState(CONVENIOS)  # the pure-Python bulk path (more than 62 convenios)
    by_dict._load_many_by_row(pacientes, [list(link) for link in links])
    assert bulk._masks == one_by_one._masks
    assert bulk.num_free == one_by_one.num_free
    assert sorted(bulk._open._items) == sorted(one_by_one._open._items)
    assert bulk._open._items == by_dict._open._items  # same order: same picks for a seed
    assert bulk.links._ids == one_by_one.links._ids
    assert bulk.pairs() == one_by_one.pairs()


@pytest.mark.parametrize("seed", range(3))
def test_deleting_bulk_loaded_links_frees_their_pairs_like_row_by_row(seed: int) -> None:
    """load_many keeps its links' pairs in an array read on delete (no dict per link): deleted
    links, committed or rolled back, leave the same state as row-by-row loading."""
    import numpy as np

    rnd = random.Random(seed)
    pacientes = sorted(rnd.sample(range(1, 10_000), 200))
    links = _random_links(rnd, pacientes)
    one_by_one, bulk = LinkState(CONVENIOS), LinkState(CONVENIOS)
    for paciente_id in pacientes:
        one_by_one.load_paciente(paciente_id)
    for link in links:
        one_by_one.load_link(*link)
    bulk.load_many(np.array(pacientes, np.int64), np.array(links, np.int64).reshape(-1, 3))
    for round_ in range(6):
        picks = [random.Random(seed * 100 + round_) for _ in range(2)]
        for state, pick in zip((one_by_one, bulk), picks, strict=True):
            for _ in range(min(15, len(state.links))):
                state.links.take(pick)
            state.rollback() if round_ % 3 == 2 else state.commit()
        assert bulk._masks == one_by_one._masks
        assert bulk.num_free == one_by_one.num_free
        assert sorted(bulk.links._ids) == sorted(one_by_one.links._ids)
        assert bulk.pairs() == one_by_one.pairs()
    assert len(bulk.pairs()) < len(links)  # links were deleted (the test tested something)


def test_load_many_refuses_an_unknown_convenio() -> None:
    with pytest.raises(KeyError):
        LinkState(CONVENIOS).load_many([1, 2], [(10, 1, 4)])


@pytest.mark.parametrize("seed", range(3))
def test_dated_pool_loaded_with_now_equals_refreshing(seed: int) -> None:
    """``DatedPool(rows, now=...)`` puts the due rows where ``refresh(now)`` puts them, in the
    same order, whatever the rows' order."""
    from datetime import datetime, timedelta

    from loadgen.ops.pools import DatedPool

    rnd = random.Random(seed)
    base = datetime(2026, 1, 1)
    rows = [(base + timedelta(minutes=rnd.randint(-500, 500)), i) for i in range(400)]
    rnd.shuffle(rows)
    now = base + timedelta(minutes=rnd.randint(-100, 100))
    heaped, split = DatedPool(rows), DatedPool(rows, now=now)
    heaped.refresh(now)
    assert split.due._ids == heaped.due._ids
    assert [split.take_soonest_future() for _ in range(split.num_future)] == [
        heaped.take_soonest_future() for _ in range(heaped.num_future)
    ]
