"""Every bad input the field trial found: its exit code, exactly one line on stderr, no
traceback, no password. In-process (CliRunner): none of these reach a database; the DSN in
the environment points at a port where nothing listens and carries a password, so a command
that connected by mistake would fail differently (exit 3) and could leak it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loadgen import limits
from tests.fixtures.cli import Cli, cli  # noqa: F401 - the fixture

SECRET = "S3cretPW"
NOWHERE = f"postgresql://alice:{SECRET}@127.0.0.1:1/nowhere"

# (args, extra environment, files to write, exit code, what the line must say)
CASES: list[tuple[list[str], dict[str, str], dict[str, str], int, str]] = [
    (["seed", "--scale", "1e12"], {}, {}, 2, "--scale = 1000000000000.0 must be > 0 and <= 10000"),
    (["seed", "--scale", "0"], {}, {}, 2, "--scale = 0.0 must be > 0"),
    (
        ["seed", "--workers", "1000"],
        {},
        {},
        2,
        f"--workers = 1000 must be 1..{limits.max_workers()}",
    ),
    (
        ["seed", "--scale", "600"],
        {"SEED_CONSULTAS": "100000"},
        {},
        2,
        "at most 50,000,000 per table",
    ),
    (
        ["--dsn", f"postgresql://alice:{SECRET}@127.0.0.1/x?connect_timeout=abc", "counts"],
        {},
        {},
        2,
        "connect_timeout 'abc' is not a number",
    ),
    (["--dsn", "", "counts"], {}, {}, 2, "--dsn: empty value"),
    (["--config", "", "counts"], {}, {}, 2, "--config: empty value"),
    (["--log-level", "", "counts"], {}, {}, 2, "--log-level: empty value"),
    (["--log-level", "LOUD", "counts"], {}, {}, 2, "--log-level = 'LOUD' is not one of DEBUG"),
    (["counts"], {}, {"config/settings.toml": "[db]\nport = 99999\n"}, 2, "db.port = 99999"),
    (["counts"], {"LOADGEN_STREAM_RATE": "5/fortnight"}, {}, 2, "unknown unit 'fortnight'"),
    (["stream", "--rate", "1e20/s"], {}, {}, 2, "--rate: rate '1e20/s' is above the maximum"),
    (["stream", "--rate", "1e400/s"], {}, {}, 2, "--rate: rate '1e400/s' is above the maximum"),
    (["stream", "--rate", "inf/fortnight"], {}, {}, 2, "--rate: invalid rate"),
    (
        ["stream", "--arrivals", "poisson"],
        {},
        {},
        2,
        "--arrivals = 'poisson' needs a finite --rate",
    ),
    (["stream", "--rate", "unlimited", "--burst", "5"], {}, {}, 2, "--burst = 5 sizes"),
    (["stream", "--report-interval", "1e-9"], {}, {}, 2, "--report-interval = 1e-09 must be 0.1"),
    (["stream", "--report-interval", "1e-10"], {}, {}, 2, "--report-interval = 1e-10 must be"),
    (
        ["stream", "--batch-size", "100000000"],
        {},
        {},
        2,
        "--batch-size = 100000000 must be 1..10000",
    ),
    (["stream", "--workers", "1000"], {}, {}, 2, "--workers = 1000 must be 1.."),
    (["stream", "--markers", "0.05"], {}, {}, 2, "--markers = 0.05 must be 0.1..3600 s"),
    (["stream"], {"LOADGEN_STREAM_MARKERS_S": "7200"}, {}, 2, "stream.markers_s = 7200"),
    (["stream", "--workers", "abc"], {}, {}, 2, "Invalid value for '--workers'"),
    (["stream", "--duration", "400d"], {}, {}, 2, "--duration: duration '400d' is above"),
    (["stream", "--mix", ""], {}, {}, 2, "--mix: empty value"),
    (["counts", "--bogus"], {}, {}, 2, "No such option: --bogus (see `loadgen counts --help`)"),
    (["init", "--drop"], {}, {}, 2, "init --drop: drops every loadgen table"),
    (["init", "--yes"], {}, {}, 2, "init --yes confirms --drop"),
    (["reset"], {}, {}, 2, "pass --yes to confirm"),
    (["scenario", "run", "toast-unchanged", "--repeat", "0"], {}, {}, 2, "--repeat 0: must be"),
    (["scenario", "drop"], {}, {}, 2, "scenario drop: drops the cdc_ scenario tables"),
    # a port (or database) without a host is localhost, never the embedded server
    (["counts"], {"LOADGEN_DSN": "", "PG_PORT": "1"}, {}, 3, "host=localhost port=1"),
    (["counts"], {}, {}, 3, "cannot connect to postgresql://alice:***@127.0.0.1:1/nowhere"),
]


@pytest.mark.parametrize(
    ("args", "env", "files", "code", "needle"),
    CASES,
    ids=[" ".join(c[0]) + (f" {sorted(c[1])}" if c[1] else "") for c in CASES],
)
def test_bad_input_is_one_line_with_its_exit_code(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    files: dict[str, str],
    code: int,
    needle: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    result = cli(args, {"LOADGEN_DSN": NOWHERE, **env})
    assert result.code == code, result.stderr
    assert len(result.stderr_lines) == 1, result.stderr
    line = result.stderr_lines[0]
    assert line.startswith("loadgen: error: ") and needle in line, line
    assert "Traceback" not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log_file(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last line of defence: a bug is still one line (exit 4), never a traceback on the
    terminal; the traceback is kept in the log file for the report."""

    def broken(settings: object) -> object:
        raise ZeroDivisionError(f"bug near {NOWHERE}")

    monkeypatch.setattr("loadgen.config.as_dict", broken)
    log_file = tmp_path / "app.log"
    result = cli(
        ["config", "show"], {"LOADGEN_DSN": NOWHERE, "LOADGEN_LOGGING_FILE": str(log_file)}
    )
    assert result.code == 4, result.stderr
    assert result.stderr_lines == [
        "loadgen: error: internal error: ZeroDivisionError: bug near"
        " postgresql://alice:***@127.0.0.1:1/nowhere (a bug: the traceback is in the log file)"
    ]
    logged = log_file.read_text()
    assert "Traceback" in logged and "ZeroDivisionError" in logged and SECRET not in logged


# Bad input named by a path is said before any connection: with 30 s of connection retries in
# the environment, a command that tried the server first would take them all (then exit 3).
# (args with {tmp} for the test's directory, what the line must say)
PATH_CASES: list[tuple[list[str], str]] = [
    (["cdc", "verify", "--ledger", "{tmp}/missing"], "--ledger '{tmp}/missing': no ledger part"),
    (
        ["cdc", "verify", "--ledger", "{tmp}/ledger/", "--debezium", "{tmp}/missing.json"],
        "--debezium '{tmp}/missing.json': No such file or directory",
    ),
    # below a regular file: no directory can be made there, whoever runs the test
    (["stream", "--ledger", "{tmp}/a-file/ledger/"], "--ledger '{tmp}/a-file/ledger/': cannot"),
    (["report", "{tmp}/missing.json"], "report: '{tmp}/missing.json' does not exist"),
]


@pytest.mark.parametrize(("args", "needle"), PATH_CASES, ids=[" ".join(c[0]) for c in PATH_CASES])
def test_a_bad_path_is_exit_2_before_the_server_is_tried(
    cli: Cli,  # noqa: F811
    tmp_path: Path,
    args: list[str],
    needle: str,
) -> None:
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "part-0.jsonl").write_text("")
    (tmp_path / "a-file").write_text("")
    retry_s = 30.0
    started = time.monotonic()
    result = cli(
        [a.format(tmp=tmp_path) for a in args],
        {"LOADGEN_DSN": NOWHERE, "LOADGEN_DB_CONNECT_RETRY_S": str(retry_s)},
    )
    elapsed = time.monotonic() - started
    assert result.code == 2, result.stderr
    assert len(result.stderr_lines) == 1, result.stderr
    assert needle.format(tmp=tmp_path) in result.stderr_lines[0], result.stderr_lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert elapsed < retry_s / 3, f"{elapsed:.1f} s: the server was tried first"
