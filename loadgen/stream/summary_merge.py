"""Merge the ``--summary-json`` files of a split run's shards into one summary, exactly.

Counts add (operations by name and kind, no-ops, row changes per table, errors, transactions,
in-doubt and recovered operations); the latency, schedule-lag and scenario histograms are added
bucket by bucket (``LatencyHistogram.from_json``), and the percentiles are read from the merged
histograms — never averaged. Workers and target rates add; the elapsed time is the longest
shard's (shards run side by side), so ``ops_per_s`` is the run's total over it.

A summary without histograms (format 1, older loadgen) cannot be merged exactly: ConfigError.
The same run twice (one ``run_id``) or shards of different counts are refused too. Two runs of
one shard (a pod restarted by Kubernetes: another ``run_id``) add up, and are listed in
``merged.restarted_shards``; missing shards in ``merged.missing_shards``. Pure but for reading
the files; used by ``loadgen summary merge``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from loadgen.errors import ConfigError
from loadgen.stream.stats import IntervalStats, LatencyHistogram
from loadgen.stream.summary import SUMMARY_FORMAT_VERSION, RunSummary

_ROW_OPS = {"insert": "c", "update": "u", "delete": "d"}


def read_summary(path: str | Path) -> dict[str, Any]:
    """One ``--summary-json`` file. Raises ConfigError: unreadable, not JSON, not a summary."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(f"{str(path)!r}: cannot read: {exc.strerror or exc}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{str(path)!r}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "total_ops" not in data:
        raise ConfigError(f"{str(path)!r}: not a `loadgen stream --summary-json` summary")
    version = data.get("format_version", 1)
    if "histograms" not in data or not isinstance(version, int) or version < 2:
        raise ConfigError(
            f"{str(path)!r}: summary format {version} has no histograms to merge exactly "
            f"(written by an older loadgen; format {SUMMARY_FORMAT_VERSION} has them)"
        )
    if version > SUMMARY_FORMAT_VERSION:
        raise ConfigError(
            f"{str(path)!r}: summary format {version} is newer than this loadgen's "
            f"({SUMMARY_FORMAT_VERSION})"
        )
    return data


def stats_of(data: Mapping[str, Any], label: str = "summary") -> IntervalStats:
    """The run totals a summary JSON holds, as ``IntervalStats`` (exact histograms included).

    Raises:
        ConfigError: a field is missing or malformed (naming ``label``).
    """
    try:
        stats = IntervalStats(
            ops_by_name=Counter({str(k): int(v) for k, v in data["by_op"].items()}),
            no_ops_by_name=Counter({str(k): int(v) for k, v in data["no_op"]["by_op"].items()}),
            rows_by_table=Counter(
                {
                    (str(table), _ROW_OPS[op]): int(n)
                    for table, ops in data["row_changes"].items()
                    for op, n in ops.items()
                    if n
                }
            ),
            errors_by_class=Counter({str(k): int(v) for k, v in data["errors"].items()}),
            num_txns=int(data["committed_txns"]),
            num_in_doubt=int(data["in_doubt"]),
            num_scenario_changes=int(data.get("scenario_steps", {}).get("row_changes", 0)),
        )
        hists = data["histograms"]
        stats.latency_ns = LatencyHistogram.from_json(hists["latency_ns"])
        stats.lag_ns = LatencyHistogram.from_json(hists["schedule_lag_ns"])
        stats.scenario_latency_ns = LatencyHistogram.from_json(hists["scenario_latency_ns"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise malformed(label, exc) from None
    return stats


def malformed(label: str, exc: Exception) -> ConfigError:
    """The one-line error for a summary a field of which is missing or malformed: the field
    or the reason in plain words (never a Python repr)."""
    if isinstance(exc, KeyError):
        why = f"no {exc.args[0]!r}" if exc.args else "a field is missing"
    elif isinstance(exc, ValueError):
        why = str(exc)
    else:  # TypeError / AttributeError: a field of the wrong JSON type
        why = "a field has the wrong type (an object, list or number where another is expected)"
    return ConfigError(f"{label}: not a loadgen summary: {why}")


def _shard_of(doc: Mapping[str, Any], label: str) -> tuple[int, int]:
    try:
        float(doc["elapsed_s"]), int(doc["workers"])
        return int(doc["shard"]["index"]), int(doc["shard"]["count"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise malformed(label, exc) from None


def merge_summaries(docs: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """One summary JSON for the shards' ``docs`` (``read_summary``'s), as ``RunSummary`` writes
    it, plus ``merged``: the inputs (label, run_id, shard), the shard count and missing shards.

    Raises:
        ConfigError: no input, a run given twice, or shard counts differ.
    """
    if not docs:
        raise ConfigError("summary merge: no summary given")
    run_ids = [str(d.get("run_id", "")) for d in docs]
    twice = sorted({r for r in run_ids if r and run_ids.count(r) > 1})
    if twice:
        raise ConfigError(f"summary merge: run {twice[0]} given more than once")
    shards = [_shard_of(d, label) for d, label in zip(docs, labels, strict=True)]
    counts = sorted({c for _, c in shards})
    if len(counts) > 1:
        raise ConfigError(f"summary merge: shards of different counts ({counts}); one run only")
    indices = [i for i, _ in shards]
    total = IntervalStats()
    for doc, label in zip(docs, labels, strict=True):
        total.merge(stats_of(doc, label))
    rates = [d.get("target_rate_per_s") for d in docs]
    reasons = sorted({str(d.get("stop_reason")) for d in docs})
    run_seeds = {d["shard"].get("run_seed") for d in docs}
    summary = RunSummary(
        total=total,
        elapsed_s=max(float(d["elapsed_s"]) for d in docs),
        num_workers=sum(int(d["workers"]) for d in docs),
        target_rate_per_s=None
        if any(r is None for r in rates)
        else float(sum(float(r) for r in rates if r is not None)),
        seed=int(next(iter(run_seeds))) if len(run_seeds) == 1 else 0,
        stop_reason=reasons[0] if len(reasons) == 1 else ",".join(reasons),
        profile=str(docs[0].get("profile", "default")),
        has_scenarios=any("scenario_steps" in d for d in docs),
        is_aborted=any(bool(d.get("aborted")) for d in docs),
        run_id=",".join(run_ids),
    )
    out = summary.to_json()
    out["recovered_ops"] = sum(int(d.get("recovered_ops", 0)) for d in docs)
    owns = [d.get("owns_existing_rows") for d in docs]
    out["owns_existing_rows"] = None if None in owns else all(owns)
    out["shard"] = {"index": None, "count": counts[0], "seed": None, "run_seed": summary.seed}
    out["merged"] = {
        "inputs": [
            {"summary": label, "run_id": run_id, "shard": f"{index}/{count}"}
            for label, run_id, (index, count) in zip(labels, run_ids, shards, strict=True)
        ],
        "shards": counts[0],
        "missing_shards": sorted(set(range(counts[0])) - set(indices)),
        "restarted_shards": sorted({i for i in indices if counts[0] > 1 and indices.count(i) > 1}),
        "run_seeds": sorted(s for s in run_seeds if s is not None),
    }
    return out


def merge_files(paths: Sequence[str | Path]) -> dict[str, Any]:
    """``merge_summaries`` of the summary files at ``paths`` (a directory: its ``*.json``).

    Raises:
        ConfigError: a path is missing or not a summary, or ``merge_summaries``'s reasons.
    """
    files: list[Path] = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise ConfigError(f"{str(path)!r}: a directory without *.json summaries")
            files += found
        else:
            files.append(p)
    return merge_summaries([read_summary(f) for f in files], [str(f) for f in files])
