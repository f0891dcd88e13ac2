"""A seed shard's options (``seed --shard I/N``, ``loadgen.shards``): its share of the seed.

Pure; used by ``loadgen seed`` (``loadgen.cli.seed_cmd``), which also makes seed shards started
at once take turns on empty tables.
"""

from __future__ import annotations

import dataclasses

from loadgen.seed_options import SeedOptions
from loadgen.shards import Shard


def shard_options(options: SeedOptions, shard: Shard) -> SeedOptions:
    """The options of shard ``I/N`` of a seed: its exact share of every table's rows (the N
    shares add up to the whole seed's), its own seed derived from ``--seed``, and ``append``
    (the shards' rows join one another's: ids are reserved from the sequences, so they never
    collide). The whole seed (``0/1``) is returned unchanged."""
    if shard.is_whole:
        return options
    counts = {table: shard.share(options.rows_for(table)) for table in options.counts}
    return dataclasses.replace(
        options,
        counts=counts,
        scale=1.0,
        seed=None if options.seed is None else shard.seed_for(options.seed),
        append=True,
    )
