"""The Typer app, global options, and the one place that maps errors to exit codes."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import typer

from loadgen import config, db, log
from loadgen.errors import ConfigError, LoadgenError

app = typer.Typer(
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
    merged: dict[str, dict[str, Any]] = {
        "db": {"dsn": state.dsn},
        "logging": {"level": state.log_level},
    }
    for section, body in (overrides or {}).items():
        merged.setdefault(section, {}).update(body)
    settings = config.load(merged, config_path=state.config_path)
    if state.settings is None:
        log.setup(settings.logging)
    state.settings = settings
    return settings


def get_dsn(ctx: typer.Context, *, start_embedded: bool = True) -> str:
    """The DSN to use (DESIGN.md's resolution order); starts the embedded server if needed."""
    state = _state(ctx)
    if state.resolved_dsn is None:
        settings = state.settings or get_settings(ctx)
        state.resolved_dsn = db.resolve_dsn(settings, start_embedded=start_embedded)
    return state.resolved_dsn[0]


def dsn_source(ctx: typer.Context) -> str:
    """Where ``get_dsn`` found the DSN, e.g. "flag", "env LOADGEN_DSN", "embedded"."""
    get_dsn(ctx)
    resolved = _state(ctx).resolved_dsn
    return resolved[1] if resolved else ""


def fail(message: str) -> None:
    """Raise a one-line bad-input error (exit 2) for checks Typer cannot express."""
    raise ConfigError(message)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app; turn LoadgenError into one line and its exit code.

    Typer (standalone mode) already prints usage errors and exits 2 for them.
    """
    try:
        app(args=argv)
    except LoadgenError as exc:
        print(f"loadgen: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
