"""Shards of one run (``--shard I/N``): parsing and validation, exact shares, derived seeds, the
shard's plan, pools that keep only the shard's rows, and exact merging of shard summaries."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from loadgen import config
from loadgen.errors import ConfigError
from loadgen.ledger.changes import RowChange
from loadgen.ops.pools import DatedPool, IdPool, LinkState
from loadgen.seed import SeedOptions
from loadgen.seed_shards import shard_options
from loadgen.shards import Shard, parse_shard
from loadgen.stream.run_spec import RunSpec
from loadgen.stream.stats import IntervalStats, LatencyHistogram
from loadgen.stream.summary import RunSummary
from loadgen.stream.summary_merge import merge_files, merge_summaries, read_summary
from tests.fixtures.cli import (
    Cli,
    cli,  # noqa: F401 (fixture)
)


def test_parse_shard_and_its_range() -> None:
    assert parse_shard("2/3") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    assert parse_shard(" 0 / 1 ").is_whole
    for bad, words in [
        ("3/3", "index must be 0..2"),
        ("1/0", "count must be 1..1000"),
        ("0/1001", "count must be 1..1000"),
        ("-1/3", "invalid shard"),
        ("1", "invalid shard"),
        ("a/b", "invalid shard"),
    ]:
        with pytest.raises(ConfigError, match=words):
            parse_shard(bad)


def test_shard_from_the_flag_or_an_indexed_job() -> None:
    env = {"JOB_COMPLETION_INDEX": "2", "LOADGEN_SHARDS": "3"}
    assert config.load(env=env).shard.shard == Shard(2, 3)
    assert config.load({"shard": {"spec": "1/4"}}, env=env).shard.shard == Shard(1, 4)
    assert config.load(env={}).shard.shard == Shard(0, 1)
    assert config.load(env={"LOADGEN_SHARDS": "5"}).shard.shard == Shard(0, 5)
    with pytest.raises(ConfigError, match=r"JOB_COMPLETION_INDEX: shard.index = 2.*LOADGEN_SHARDS"):
        config.load(env={"JOB_COMPLETION_INDEX": "2"})  # an index without the count
    with pytest.raises(ConfigError, match=r"LOADGEN_SHARDS: shard.count = 0 must be 1\.\.1000"):
        config.load(env={"LOADGEN_SHARDS": "0"})
    with pytest.raises(ConfigError, match=r"shard.index = 3.*must be 0\.\.2"):
        config.load(env={"JOB_COMPLETION_INDEX": "3", "LOADGEN_SHARDS": "3"})


def test_bad_shard_flags_exit_2_with_one_line(cli: Cli) -> None:
    for args in (["stream", "--shard", "3/3"], ["seed", "--shard", "x"]):
        r = cli(args)
        assert r.code == 2, r.stderr
        assert len(r.stderr_lines) == 1 and "--shard" in r.stderr
    r = cli(["stream", "--shard", "0/3", "--max-ops", "2"])
    assert r.code == 2 and "fewer than the 3 shards" in r.stderr
    r = cli(["seed"], env={"JOB_COMPLETION_INDEX": "4", "LOADGEN_SHARDS": "2"})
    assert r.code == 2 and "JOB_COMPLETION_INDEX" in r.stderr


@pytest.mark.parametrize("total", [0, 1, 2, 7, 100, 10**12 + 1])
@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shares_add_up_exactly(total: int, count: int) -> None:
    shares = [Shard(i, count).share(total) for i in range(count)]
    assert sum(shares) == total and max(shares) - min(shares) <= 1


def test_seeds_are_derived_distinct_and_reproducible() -> None:
    seeds = [Shard(i, 3).seed_for(42) for i in range(3)]
    assert len(set(seeds)) == 3 and 42 not in seeds
    assert seeds == [Shard(i, 3).seed_for(42) for i in range(3)]
    assert Shard(0, 3).seed_for(43) != seeds[0] and Shard(0, 4).seed_for(42) != seeds[0]
    assert Shard().seed_for(42) == 42  # one shard: the run's own seed
    assert all(0 <= s < 2**63 for s in seeds)


def _stream_settings(**stream: object) -> config.StreamConfig:
    return config.load({"stream": stream}, env={}).stream


def test_a_shards_plan_is_its_share_and_the_shards_interleave() -> None:
    stream = _stream_settings(rate="300/s", max_ops=100, burst=10, seed=9, workers=2)
    whole = RunSpec.from_settings(stream, "")
    plans = [RunSpec.from_settings(stream, "", shard=Shard(i, 3)) for i in range(3)]
    assert all(p.rate_per_s == pytest.approx(100.0) for p in plans)
    assert sum(p.max_ops or 0 for p in plans) == 100
    assert all(p.burst == 4 for p in plans)  # ceil(10 / 3)
    assert {p.run_seed for p in plans} == {9} and len({p.seed for p in plans}) == 3
    assert whole.seed == 9 and whole.run_seed is None
    # every shard's workers' first tokens: together, one every 1/300 s, none twice
    phases = sorted(w.phase_s for p in plans for w in p.worker_specs())
    assert np.allclose(np.diff(phases), 1 / 300)
    specs = [w for p in plans for w in p.worker_specs()]
    assert {(w.shard_index, w.shard_count) for w in specs} == {(0, 3), (1, 3), (2, 3)}
    paced = RunSpec.from_settings(_stream_settings(interval_s=2.0), "", shard=Shard(1, 4))
    assert paced.interval_s == 8.0  # the pace's rate split too


def test_phases_and_shards_are_refused_together() -> None:
    stream = _stream_settings(phase="5s@100/s,5s@200/s")
    assert RunSpec.from_settings(stream, "").phases is not None
    with pytest.raises(ConfigError, match="--phases with --shard 1/2: not supported"):
        RunSpec.from_settings(stream, "", shard=Shard(1, 2))


def test_pools_keep_only_the_shards_inserts() -> None:
    rnd = random.Random(1)
    pool = IdPool([3, 6], residue=(0, 3))
    for row_id in range(10, 20):
        pool.add(row_id)
    pool.commit()
    assert sorted(pool.take(rnd) for _ in range(len(pool))) == [3, 6, 12, 15, 18]
    dated = DatedPool(residue=(1, 2))
    for row_id in range(4):
        dated.add(datetime(2020, 1, 1), row_id)
    dated.commit()
    dated.refresh(datetime(2021, 1, 1))
    assert sorted(dated.due.take(rnd) for _ in range(len(dated.due))) == [1, 3]
    links = LinkState([100, 200], residue=(1, 2))
    links.add_paciente(7)
    links.add_paciente(8)  # another shard's: its links are not this shard's to touch
    links.commit()
    assert links.num_free == 2 and links.pick_new_pair(rnd)[0] == 7


def test_seed_shards_split_every_table_exactly() -> None:
    options = SeedOptions.from_config(config.load({"seed": {"scale": 0.5, "seed": 3}}, env={}).seed)
    parts = [shard_options(options, Shard(i, 3)) for i in range(3)]
    for table in options.counts:
        assert sum(p.rows_for(table) for p in parts) == options.rows_for(table)
    assert all(p.append for p in parts) and len({p.seed for p in parts}) == 3
    assert shard_options(options, Shard()) is options


def _summary(values_ms: list[float], ops: int, run_id: str, shard: Shard) -> RunSummary:
    stats = IntervalStats()
    for i, v in enumerate(values_ms):
        kind = "d" if int(v * 1000) % 3 == 0 else "c"  # from the value: the same when merged
        change = RowChange("consultas", kind, i, {}, "insert_consulta")
        stats.record_commit(["insert_consulta"], [change], [0], 0, int(v * 1e6))
    stats.ops_by_name["update_exame"] += ops
    stats.errors_by_class["40"] += 1
    return RunSummary(
        total=stats,
        elapsed_s=2.0 + shard.index,
        num_workers=2,
        target_rate_per_s=100.0,
        seed=shard.seed_for(5),
        stop_reason="max_ops",
        run_id=run_id,
        shard=shard,
        run_seed=5,
    )


def test_merged_summary_is_exact_and_never_averages_percentiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # very different shards: averaging their p99s would be far off the run's p99
    samples = [list(rng.exponential(scale, 400)) for scale in (1.0, 5.0, 300.0)]
    summaries = [_summary(s, 10 * (i + 1), f"run{i}", Shard(i, 3)) for i, s in enumerate(samples)]
    paths = []
    for i, summary in enumerate(summaries):
        paths.append(tmp_path / f"s{i}.json")
        paths[-1].write_bytes(orjson.dumps(summary.to_json()))
    merged = merge_files([tmp_path])
    whole = _summary([v for s in samples for v in s], 60, "x", Shard()).to_json()
    for key in ("latency_ms", "schedule_lag_ms", "histograms", "row_changes", "by_op"):
        assert merged[key] == whole[key], key
    assert merged["total_ops"] == 1200 + 60 and merged["errors"] == {"40": 3}
    assert merged["workers"] == 6 and merged["target_rate_per_s"] == 300.0
    assert merged["elapsed_s"] == 4.0 and merged["merged"]["missing_shards"] == []
    averaged = np.mean([s.to_json()["latency_ms"]["p99"] for s in summaries])
    assert abs(merged["latency_ms"]["p99"] - averaged) > 100  # what averaging would have said
    assert merged["shard"]["run_seed"] == 5
    two = merge_summaries([read_summary(p) for p in paths[:2]], ["a", "b"])
    assert two["merged"]["missing_shards"] == [2]


def test_histogram_json_round_trips_and_refuses_another_layout() -> None:
    hist = LatencyHistogram()
    hist.record_many(np.random.default_rng(1).integers(0, 10**10, 1000))
    data = orjson.loads(orjson.dumps(hist.to_json()))
    assert LatencyHistogram.from_json(data) == hist
    with pytest.raises(ValueError, match="layout"):
        LatencyHistogram.from_json({**data, "sub_bits": 5})
    with pytest.raises(ValueError, match="add up"):
        LatencyHistogram.from_json({**data, "count": data["count"] + 1})


def test_merge_refuses_what_cannot_be_merged_exactly(tmp_path: Path, cli: Cli) -> None:
    one = _summary([1.0], 1, "r1", Shard(0, 2)).to_json()
    old = {k: v for k, v in one.items() if k not in ("histograms", "format_version")}
    no_by_op = {k: v for k, v in one.items() if k != "by_op"}
    bad_bucket = orjson.loads(orjson.dumps(one))
    bad_bucket["histograms"]["latency_ns"]["buckets"] = [[1, -5]]
    no_shard = {k: v for k, v in one.items() if k != "shard"}
    cases = {
        "old.json": (old, "no histograms"),
        "text.json": (None, "not JSON"),
        "bad_s2.json": (no_by_op, "bad_s2.json: not a loadgen summary: no 'by_op'"),
        "bucket.json": (bad_bucket, "bucket.json: not a loadgen summary: bucket [1, -5]"),
        "noshard.json": (no_shard, "noshard.json: not a loadgen summary: no 'shard'"),
    }
    for name, (doc, words) in cases.items():
        path = tmp_path / name
        path.write_bytes(b"{" if doc is None else orjson.dumps(doc))
        r = cli(["summary", "merge", str(path)])
        assert r.code == 2 and words in r.stderr and len(r.stderr_lines) == 1, r.stderr
        assert "Error(" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    a = tmp_path / "a.json"
    a.write_bytes(orjson.dumps(one))
    r = cli(["summary", "merge", str(a), str(a)])
    assert r.code == 2 and "run r1 given more than once" in r.stderr
    b = tmp_path / "b.json"
    b.write_bytes(orjson.dumps(_summary([1.0], 1, "r2", Shard(0, 2)).to_json()))
    r = cli(["summary", "merge", str(a), str(b)])  # shard 0 twice: a restarted pod's two runs
    assert r.code == 0, r.stderr
    restarted = orjson.loads(r.stdout)
    assert restarted["merged"]["restarted_shards"] == [0] and restarted["total_ops"] == 4
    assert restarted["merged"]["missing_shards"] == [1]
    warning = "warning: shards 1 of 2 missing: the merged summary covers 1 of 2 shards"
    assert r.stderr_lines == [warning], r.stderr
    c = tmp_path / "c.json"
    c.write_bytes(orjson.dumps(_summary([2.0], 1, "r3", Shard(1, 2)).to_json()))
    out = tmp_path / "merged.json"
    r = cli(["summary", "merge", str(a), str(c), "--out", str(out)])
    assert r.code == 0, r.stderr
    assert not any("warning" in line for line in r.stderr_lines), r.stderr  # the whole set
    merged = orjson.loads(out.read_bytes())
    assert merged["total_ops"] == 4 and Counter(merged["by_op"]) == Counter(
        {"insert_consulta": 2, "update_exame": 2}
    )
