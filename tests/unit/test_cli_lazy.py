"""Commands start at once (issue 11): the root group imports a command's module only when the
command is looked up, ``--help`` still lists every command with its one-line help, and
``--help``, ``counts`` and ``check`` import none of numpy, Faker, rich or pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.core
import typer.main

from loadgen.cli.app import COMMANDS, app, load_command_modules

HEAVY = ("numpy", "faker", "rich", "pydantic", "psycopg_pool", "loadgen.stream", "loadgen.seed")

# Runs the CLI like the console script, then reports which modules it imported (stderr's
# last line), so the check sees a fresh interpreter.
_PROBE = """
import json, sys
from loadgen.__main__ import main
sys.argv = ["loadgen", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _probe(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report["code"], done.stdout, set(report["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return [name for name in HEAVY if name in modules]


@pytest.mark.parametrize("args", [["--help"], ["counts", "--help"], ["check", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    code, out, modules = _probe(args)
    assert code == 0
    assert "Usage: loadgen" in out
    assert _heavy(modules) == []


def test_root_help_imports_no_command_module_and_no_psycopg() -> None:
    code, out, modules = _probe(["--help"])
    assert code == 0
    assert [
        m for m in modules if m.startswith("loadgen.cli.") and m.endswith(("_cmd", "_cmds"))
    ] == []
    assert "psycopg" not in modules
    for command in COMMANDS:  # every command is listed, with its summary's start
        listing = out.split("Commands:")[1].splitlines()
        line = next(line for line in listing if line.split()[:1] == [command.name])
        assert command.summary.split()[0] in line


def test_lazy_help_matches_the_loaded_commands() -> None:
    """The summaries in ``COMMANDS`` say what each command's own help says, at any width, and
    ``COMMANDS`` lists exactly the commands the modules register (in which order they register
    depends on what was imported before: other tests in this process run commands)."""
    load_command_modules()
    loaded = typer.main.get_group(app).commands
    names = [command.name for command in COMMANDS]
    assert sorted(loaded) == sorted(names) and len(set(names)) == len(names)
    for command in COMMANDS:
        stand_in = typer.core.TyperCommand(name=command.name, help=command.summary)
        for limit in (20, 45, 60, 74, 100, 400):
            assert stand_in.get_short_help_str(limit) == loaded[command.name].get_short_help_str(
                limit
            ), (command.name, limit)


def test_unknown_command_still_suggests_unloaded_ones() -> None:
    code, _, modules = _probe(["cuonts"])
    assert code == 2
    assert "loadgen.cli.db_cmds" not in modules


def test_unknown_command_message_names_the_close_match() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loadgen", "streem"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Did you mean 'stream'" in done.stderr


@pytest.mark.db
@pytest.mark.parametrize("command", ["counts", "check"])
def test_counts_and_check_run_without_heavy_imports(
    command: str, schema_dsn: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, modules = _probe([command, "--json"], cli_env, tmp_path)
    assert code == 0, out
    doc = json.loads(out)
    if command == "counts":
        assert doc["convenios"] == 12 and doc["pacientes"] == 0
    else:
        assert doc["ok"] is True and doc["checks"]
    assert "psycopg" in modules  # it did talk to the database
    assert _heavy(modules) == []


def test_every_command_module_is_named_in_commands() -> None:
    """A new ``loadgen/cli/*_cmd.py`` registers its commands only when imported: it must be in
    some ``LazyCommand.modules``, or its commands would silently be missing."""
    cli_dir = Path(sys.modules["loadgen.cli.app"].__file__ or "").parent
    modules = {p.stem for p in cli_dir.glob("*.py") if p.stem.endswith(("_cmd", "_cmds"))}
    named = {module for command in COMMANDS for module in command.modules}
    assert modules == named


def test_counts_table_is_the_borderless_rich_table() -> None:
    """``counts`` prints its table without rich: the same text rich prints off a terminal."""
    import io

    from rich.console import Console
    from rich.table import Table

    from loadgen.cli.db_cmds import counts_table

    result = {"pacientes": 100_003, "medicos": 10_000, "convenios": 12, "pacientes_convenios": 0}
    table = Table("table", "rows", title=None, box=None)
    for name, count in result.items():
        table.add_row(name, f"{count:,}")
    table.add_row("total", f"{sum(result.values()):,}", style="bold")
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True).print(table)
    assert counts_table(result) == out.getvalue()
