"""``loadgen summary merge``: one summary of a split run from its shards' ``--summary-json``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from loadgen.cli.app import app
from loadgen.errors import ConfigError

summary_app = typer.Typer(
    help="Stream summaries (--summary-json): merge the shards of a split run.",
    no_args_is_help=True,
)
app.add_typer(summary_app, name="summary")


@summary_app.command("merge")
def summary_merge(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Summary files of the shards (`stream --summary-json`), or directories of them.",
            show_default=False,
        ),
    ],
    out: str | None = typer.Option(
        None, "--out", "-o", help="Write the merged summary here [default: stdout]."
    ),
) -> None:
    """Add the shards' summaries up into one: counts add, histograms merge bucket by bucket
    and the percentiles come from the merged histograms (never averaged); elapsed is the
    longest shard's. Exit 2 when a file is not a summary, carries no histograms (an older
    loadgen), or the same run is given twice; two runs of one shard (a restarted pod) add up.
    Shards missing from the set: a warning line on stderr, exit 0."""
    from loadgen.stream.summary_merge import merge_files

    merged = merge_files(paths)
    missing = merged["merged"]["missing_shards"]
    if missing:
        count = merged["merged"]["shards"]
        have = count - len(missing)
        print(
            f"warning: shards {', '.join(str(i) for i in missing)} of {count} missing:"
            f" the merged summary covers {have} of {count} shards",
            file=sys.stderr,
        )
    text = orjson.dumps(merged, option=orjson.OPT_INDENT_2) + b"\n"
    if out is None:
        sys.stdout.write(text.decode())
        return
    try:
        Path(out).write_bytes(text)
    except OSError as exc:
        raise ConfigError(f"--out {out!r}: cannot write: {exc.strerror or exc}") from None
    print(
        f"summary merge: {len(merged['merged']['inputs'])} summaries, {merged['total_ops']} ops, "
        f"p99 {merged['latency_ms']['p99']} ms -> {out}",
        file=sys.stderr,
    )
