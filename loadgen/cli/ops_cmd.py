"""``loadgen ops list``: the streaming operations, from the registry."""

from __future__ import annotations

import sys

import orjson
import typer

from loadgen.cli.app import app, fail
from loadgen.ops import catalog
from loadgen.ops.mix import parse_mix

ops_app = typer.Typer(
    name="ops",
    help="The operations `loadgen stream` draws from (the names `--mix` takes).",
    no_args_is_help=True,
)
app.add_typer(ops_app, name="ops")


@ops_app.command("list")
def list_ops(
    mix: str | None = typer.Option(
        None,
        "--mix",
        help="Show the weights and shares this `stream --mix` value gives each operation, "
        "e.g. insert=70,update=30,delete=5 [default: the default mix].",
        show_default=False,
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON array of objects instead."),
    markdown: bool = typer.Option(False, "--markdown", help="A Markdown table instead."),
) -> None:
    """List every operation: name, kind, tables it writes, weight, what it does.

    Weights are relative. A kind's weight in `--mix` (insert=70) is split over that kind's
    operations that are on by default, in proportion to their default weights; a name gets
    exactly its weight; operations the mix does not reach get 0.
    """
    if as_json and markdown:
        fail("--json and --markdown: give at most one")
    if markdown and mix is not None:
        fail("--markdown shows the default weights (the docs' table); leave out --mix")
    weights = parse_mix(mix) if mix is not None else None
    if as_json:
        sys.stdout.write(
            orjson.dumps(catalog.entries(weights), option=orjson.OPT_INDENT_2).decode()
        )
        sys.stdout.write("\n")
    elif markdown:
        print(catalog.markdown_table())
    else:
        print(catalog.text_table(weights))
