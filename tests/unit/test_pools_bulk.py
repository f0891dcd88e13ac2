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
    assert bulk._link_pair == one_by_one._link_pair
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
