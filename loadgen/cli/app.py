"""The Typer app, global options, signal handling per command, and the error mapping.

``LoadgenGroup.main`` runs every command (console script, ``python -m loadgen`` and tests'
``CliRunner`` alike) through ``loadgen.cli.failures``: whatever escapes becomes one line on
stderr and its exit code. The global callback decides what SIGINT/SIGTERM do for the command
about to run (``loadgen.interrupts``): ``stream`` takes the signals recorded during start-up
over into its stop flag; every other command gets them as ``Interrupted`` (exit 4).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperGroup

from loadgen import interrupts
from loadgen.cli import failures
from loadgen.errors import ConfigError

if TYPE_CHECKING:
    from loadgen import config

# Commands that handle SIGINT/SIGTERM themselves, as a graceful stop (exit 0 with a summary):
# they install their handlers first thing, then call ``interrupts.hand_over()``.
SELF_STOPPING_COMMANDS = frozenset({("stream",), ("cdc", "capture"), ("cdc", "watch")})
_COMMAND_PATH = "loadgen.command_path"  # ctx.meta key: the command about to run, as names


def _skip_coercing_absent_values() -> None:
    """Make Typer skip building a parameter's coercer (a pydantic ``TypeAdapter``: importing
    pydantic costs ~0.1-0.3 s) for an option that was not given and has nothing to check.

    Typer >= 0.2x builds the coercer on first use even for a ``None`` value, which it then
    returns unchanged; for a non-required single-valued option the result (``None``, then the
    option's callback) is the same either way. Older Typer versions (no ``_TyperParameter``)
    are left alone.
    """
    param_class: Any = getattr(typer.core, "_TyperParameter", None)
    if param_class is None or getattr(param_class, "_loadgen_lazy", False):
        return
    process_value = param_class.process_value

    def lazy_process_value(self: Any, ctx: Any, value: Any) -> Any:
        # What Typer's process_value does for None, without the coercer (it returns None).
        if value is None and not self.multiple and self.nargs != -1 and not self.required:
            return None if self.callback is None else self.callback(ctx, self, None)
        return process_value(self, ctx, value)

    param_class.process_value = lazy_process_value
    param_class._loadgen_lazy = True


_skip_coercing_absent_values()


@dataclass(frozen=True)
class LazyCommand:
    """A top-level command whose module is imported only when the command is looked up.

    ``modules`` (under ``loadgen.cli``) register it on ``app`` when imported; ``summary`` is
    its help's first sentence, which is all ``loadgen --help`` shows (tests/unit/test_cli_lazy.py
    checks it against the real command's help).
    """

    name: str
    modules: tuple[str, ...]
    summary: str


# Every top-level command, in --help order (commands, then groups, as Typer lists them).
COMMANDS = (
    LazyCommand(
        "init",
        ("db_cmds",),
        "Create the database if needed, then the schema, 9 indexes, triggers and lookup rows.",
    ),
    LazyCommand("counts", ("db_cmds",), "Row count per table, in foreign-key order."),
    LazyCommand(
        "check",
        ("db_cmds",),
        "Consistency checks: FK orphans, duplicate natural keys, CPF/CNPJ check digits,"
        " timestamps and dates in the future, admissions that end before they start,"
        " status/date coherence.",
    ),
    LazyCommand(
        "seed",
        ("seed_cmd",),
        "Populate the 7 tables in foreign-key order (COPY by default), then index and ANALYZE.",
    ),
    LazyCommand(
        "reset",
        ("seed_cmd",),
        "Drop every loadgen table, recreate the schema, and seed it (asks, or --yes).",
    ),
    LazyCommand(
        "stream",
        ("stream_cmd",),
        "Stream INSERT/UPDATE/DELETE operations until --duration, --max-ops or Ctrl-C.",
    ),
    LazyCommand(
        "report",
        ("report_cmd",),
        "Write an HTML report: throughput by kind, latency and lag percentiles, errors, CDC lag"
        " (with cdc watch records), settings and summary; no network needed to open it.",
    ),
    LazyCommand("config", ("db_cmds",), "Show the merged configuration."),
    LazyCommand(
        "db",
        ("db_cmds",),
        "The embedded PostgreSQL server used when no database is configured.",
    ),
    LazyCommand(
        "ops",
        ("ops_cmd",),
        "The operations `loadgen stream` draws from (the names `--mix` takes).",
    ),
    LazyCommand(
        "cdc",
        ("cdc_cmd", "capture_cmd", "watch_cmd"),
        "Change data capture: publication, slot and replica identity; verify what a CDC"
        " consumer captured against the ledger; Debezium connector config.",
    ),
    LazyCommand(
        "scenario",
        ("scenario_cmd",),
        "CDC edge cases on demand: TOAST, replica identity, PK updates, tombstones, TRUNCATE,"
        " big transactions, rollbacks, extreme values, DDL, partitions, unicode.",
    ),
    LazyCommand(
        "summary",
        ("summary_cmd",),
        "Stream summaries (--summary-json): merge the shards of a split run.",
    ),
)
_LAZY = {command.name: command for command in COMMANDS}


def load_command_modules(names: Sequence[str] | None = None) -> None:
    """Import the modules that register the top-level commands ``names`` (default: all)."""
    for name in names if names is not None else list(_LAZY):
        for module in _LAZY[name].modules:
            importlib.import_module(f"loadgen.cli.{module}")


class LoadgenGroup(TyperGroup):
    """The root command: error mapping and signal handling around every command.

    Commands are lazy (``COMMANDS``): a command's module, and what it imports (psycopg, numpy,
    Faker, rich...), is imported only when that command is looked up; ``--help`` lists them all
    from their summaries without importing any.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        return [*_LAZY, *(name for name in self.commands if name not in _LAZY)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in _LAZY:
            load_command_modules([cmd_name])
            # The modules registered on ``app``: convert what is registered now, keep the new.
            for name, loaded in typer.main.get_group(app).commands.items():
                self.commands.setdefault(name, loaded)
            command = self.commands.get(cmd_name)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # As TyperGroup's, from the summaries for commands not imported yet.
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None and name in _LAZY:
                command = typer.core.TyperCommand(name=name, help=_LAZY[name].summary)
            if command is not None and not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return self._click_resolve_command(ctx, args)
        except failures.click_exceptions.UsageError as exc:  # suggest unloaded ones too
            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if self.suggest_commands and matches:
                suggestions = ", ".join(f"{m!r}" for m in matches)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def invoke(self, ctx: Any) -> Any:
        ctx.meta[_COMMAND_PATH] = _command_path(self, ctx, [*ctx._protected_args, *ctx.args])
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise failures.CommandInterrupted(exc) from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; exit (or, with ``standalone_mode`` False, return) its code.

        The SIGINT/SIGTERM handlers in place before are put back afterwards.
        """
        handlers = interrupts.current_handlers()
        try:
            code = failures.run(
                lambda: TyperGroup.main(
                    self,
                    args=args,
                    prog_name=prog_name or "loadgen",
                    complete_var=complete_var,
                    standalone_mode=False,
                    windows_expand_args=windows_expand_args,
                    **extra,
                )
            )
        finally:
            interrupts.restore(handlers)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=LoadgenGroup,
    name="loadgen",
    help=(
        "OLTP hospital simulator for PostgreSQL: build the schema, seed it with COPY, stream a\n"
        "rate-controlled mix of INSERT/UPDATE/DELETE from N workers, and verify what a CDC\n"
        "consumer captured.\n\n"
        "Typical run:\n\n"
        "  loadgen init && loadgen seed && loadgen stream --rate 200/min --duration 5m\n\n"
        "With no database configured, an embedded PostgreSQL is started under .loadgen/."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class CliState:
    dsn: str | None = None  # --dsn
    config_path: str | None = None  # --config
    log_level: str | None = None  # --log-level
    settings: config.Settings | None = None  # cached base settings (no command flags)
    resolved_dsn: tuple[str, str] | None = None  # cached (dsn, source)


@app.callback()
def _global_options(
    ctx: typer.Context,
    dsn: str | None = typer.Option(
        None,
        "--dsn",
        help="PostgreSQL DSN (URI or key=value). Overrides LOADGEN_DSN, "
        "DATABASE_URL, PG_* and config files. Default: the embedded server.",
        show_default=False,
    ),
    config_path: str | None = typer.Option(
        None,
        "--config",
        help="TOML settings file (default: config/settings.toml, or $LOADGEN_CONFIG).",
        show_default=False,
    ),
    log_level: str | None = typer.Option(
        None,
        "--log-level",
        help="DEBUG, INFO, WARNING, ERROR (default INFO, or LOG_LEVEL).",
        show_default=False,
    ),
) -> None:
    ctx.obj = CliState(dsn=dsn, config_path=config_path, log_level=log_level)
    if ctx.meta.get(_COMMAND_PATH) not in SELF_STOPPING_COMMANDS:
        interrupts.raise_on_signal()  # raises at once for a signal received while starting


def _command_path(group: Any, ctx: Any, args: list[str]) -> tuple[str, ...]:
    """The names of the (sub)commands ``args`` select, e.g. ``("cdc", "capture", "stop")``;
    the walk ends at the first argument that is not a subcommand's name."""
    path: list[str] = []
    for arg in args:
        command = group.get_command(ctx, arg) if hasattr(group, "get_command") else None
        if command is None:
            break
        path.append(arg)
        group = command
    return tuple(path)


def _state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def get_settings(
    ctx: typer.Context, overrides: dict[str, dict[str, Any]] | None = None
) -> config.Settings:
    """Settings for this command: every layer plus global flags plus ``overrides``.

    ``overrides`` is ``{section: {field: value}}``; None values mean "flag not given".
    Also sets up logging (once per command). Raises ConfigError (exit 2).
    """
    state = _state(ctx)
    if state.config_path is not None and not state.config_path.strip():
        raise ConfigError("--config: empty value ''; leave it out for config/settings.toml")
    merged: dict[str, dict[str, Any]] = {
        "db": {"dsn": state.dsn},
        "logging": {"level": state.log_level},
    }
    for section, body in (overrides or {}).items():
        merged.setdefault(section, {}).update(body)
    from loadgen import config, log  # here, not at the top: `loadgen --help` needs neither

    settings = config.load(merged, config_path=state.config_path)
    if state.settings is None:
        log.setup(settings.logging)
    state.settings = settings
    return settings


def get_dsn(ctx: typer.Context, *, start_embedded: bool = True) -> str:
    """The DSN to use (``loadgen.dsn_resolution.resolve_dsn``'s order); starts the embedded
    server if needed."""
    from loadgen.dsn_resolution import resolve_dsn

    state = _state(ctx)
    if state.resolved_dsn is None:
        settings = state.settings or get_settings(ctx)
        state.resolved_dsn = resolve_dsn(settings, start_embedded=start_embedded)
    return state.resolved_dsn[0]


def dsn_source(ctx: typer.Context) -> str:
    """Where ``get_dsn`` found the DSN, e.g. "flag", "env LOADGEN_DSN", "embedded"."""
    get_dsn(ctx)
    resolved = _state(ctx).resolved_dsn
    return resolved[1] if resolved else ""


def fail(message: str) -> None:
    """Raise a one-line bad-input error (exit 2) for checks Typer cannot express."""
    raise ConfigError(message)


def confirm_destruction(ctx: typer.Context, what: str, yes: bool, *, command: str) -> None:
    """Go on only when the user agreed to lose ``what``: ``--yes``, or "y" on a terminal (the
    prompt names the database; without a terminal nothing is resolved or started).

    Raises:
        ConfigError: no terminal to ask on and no --yes, or the answer was no (exit 2; nothing
            was done).
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(
            f"{command}: drops {what}; no terminal to confirm on, pass --yes to confirm"
        )
    from loadgen import db

    if not typer.confirm(f"{command}: drop {what} in {db.mask_dsn(get_dsn(ctx))}?", err=True):
        raise ConfigError(f"{command}: not confirmed; nothing was dropped")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``) and exit with its code."""
    app(args=argv)
