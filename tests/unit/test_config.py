"""Configuration layers and validation (no database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadgen import config, db
from loadgen.dsn_resolution import resolve_dsn
from loadgen.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    return tmp_path


def _toml(text: str) -> None:
    Path("config/settings.toml").write_text(text)


def _dotenv(text: str) -> None:
    Path("config/.env").write_text(text)


# (layers present, expected stream.batch_size, expected source)
PRECEDENCE = [
    ({}, 50, None),
    ({"toml"}, 10, "config/settings.toml"),
    ({"toml", "dotenv"}, 20, "config/.env BATCH_SIZE"),
    ({"toml", "dotenv", "env"}, 30, "env BATCH_SIZE"),
    ({"toml", "dotenv", "env", "flag"}, 40, "flag"),
    ({"toml", "flag"}, 40, "flag"),
    ({"dotenv", "env"}, 30, "env BATCH_SIZE"),
]


@pytest.mark.parametrize(("layers", "expected", "source"), PRECEDENCE)
def test_precedence(layers: set[str], expected: int, source: str | None) -> None:
    if "toml" in layers:
        _toml("[stream]\nbatch_size = 10\n")
    if "dotenv" in layers:
        _dotenv("BATCH_SIZE=20\n")
    env = {"BATCH_SIZE": "30"} if "env" in layers else {}
    flags = {"stream": {"batch_size": 40}} if "flag" in layers else None
    settings = config.load(flags, env=env)
    assert settings.stream.batch_size == expected
    assert settings.sources.get("stream.batch_size") == source


def test_unset_flags_do_not_hide_lower_layers() -> None:
    settings = config.load({"stream": {"batch_size": None}}, env={"BATCH_SIZE": "7"})
    assert settings.stream.batch_size == 7


def test_legacy_and_generic_env_names() -> None:
    env = {
        "STREAM_INTERVAL_SECONDS": "5",
        "MAX_JITTER_MS": "0",
        "SEED_PACIENTES": "10",
        "LOG_LEVEL": "debug",
        "LOADGEN_STREAM_WORKERS": "3",
        "PG_HOST": "db.example",
    }
    s = config.load(env=env)
    assert (s.stream.interval_s, s.stream.max_jitter_ms, s.seed.pacientes) == (5.0, 0, 10)
    assert (s.logging.level, s.stream.workers, s.db.host) == ("DEBUG", 3, "db.example")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[stream]\nworkerz = 1\n", "unknown key stream.workerz"),
        ("[streams]\n", "unknown section [streams]"),
        ("[stream]\nworkers = 'four'\n", "stream.workers = 'four' is not a valid int"),
        ("[stream]\nworkers = 0\n", "stream.workers = 0 must be 1.."),
        ("[seed]\npacientes = -5\n", "seed.pacientes = -5 must be 0..50,000,000 rows"),
        ("[seed]\nmethod = 'rsync'\n", "seed.method = 'rsync' is not one of copy, insert"),
        ("[stream]\nbatch_size = 1.5\n", "stream.batch_size = 1.5 is not a valid int"),
        ("[stream\n", "is not valid TOML"),
    ],
)
def test_bad_config_file(toml: str, message: str) -> None:
    _toml(toml)
    with pytest.raises(ConfigError) as info:
        config.load(env={})
    assert message in str(info.value)
    assert "config/settings.toml" in str(info.value)


def test_every_problem_reported_at_once() -> None:
    _toml("[stream]\nworkers = 0\nbatch_size = -1\n")
    with pytest.raises(ConfigError) as info:
        config.load(env={})
    assert "stream.workers" in str(info.value) and "stream.batch_size" in str(info.value)


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="env BATCH_SIZE: stream.batch_size = 'lots'"):
        config.load(env={"BATCH_SIZE": "lots"})


def test_missing_explicit_config_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config file nope.toml"):
        config.load(config_path="nope.toml", env={})


def test_bad_dotenv_line() -> None:
    _dotenv("JUSTAWORD\n")
    with pytest.raises(ConfigError, match=r"config/.env:1: expected KEY=VALUE"):
        config.load(env={})


# DSN resolution order (README): flag > LOADGEN_DSN/DATABASE_URL > PG_* > settings.toml.
def test_dsn_resolution_order() -> None:
    _toml('[db]\ndsn = "host=from-toml"\n')
    toml_only = config.load(env={})
    assert resolve_dsn(toml_only) == ("host=from-toml", "config/settings.toml")
    pg_env = config.load(env={"PG_HOST": "from-pg-env", "PG_PASSWORD": "pw"})
    dsn, source = resolve_dsn(pg_env)
    assert "from-pg-env" in dsn and source == "env PG_HOST"
    url_env = config.load(env={"PG_HOST": "h", "DATABASE_URL": "postgresql://from-url/x"})
    assert resolve_dsn(url_env) == ("postgresql://from-url/x", "env DATABASE_URL")
    flag = config.load(
        {"db": {"dsn": "postgresql://from-flag/x"}}, env={"LOADGEN_DSN": "postgresql://env/x"}
    )
    assert resolve_dsn(flag) == ("postgresql://from-flag/x", "flag")


@pytest.mark.parametrize(
    ("dsn", "masked"),
    [
        ("postgresql://u:s3cret@h:5432/d", "postgresql://u:***@h:5432/d"),
        (
            "postgresql://u@h/d?password=s3cret&sslmode=off",
            "postgresql://u@h/d?password=***&sslmode=off",
        ),
        ("host=h password=s3cret user=u", "host=h password=*** user=u"),
        ("host=h password='s3 cret' user=u", "host=h password=*** user=u"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
    ],
)
def test_mask_dsn(dsn: str, masked: str) -> None:
    assert db.mask_dsn(dsn) == masked


def test_as_dict_masks_password() -> None:
    s = config.load(env={"PG_PASSWORD": "s3cret", "LOADGEN_DSN": "postgresql://u:s3cret@h/d"})
    text = repr(config.as_dict(s))
    assert "s3cret" not in text


def test_dotenv_inline_comments_and_quotes() -> None:
    _dotenv('BATCH_SIZE=20     # operations per transaction\nPG_HOST="db # not a comment"\n')
    settings = config.load(env={})
    assert settings.stream.batch_size == 20
    assert settings.db.host == "db # not a comment"


def test_dotenv_unterminated_quote() -> None:
    _dotenv('PG_HOST="db\n')
    with pytest.raises(ConfigError, match="unterminated quote"):
        config.load(env={})


@pytest.mark.parametrize(
    ("setup", "env", "message"),
    [
        (lambda: _toml("workers = 2\n"), {}, "top-level key 'workers' must sit in a section"),
        (
            lambda: Path("config/settings.toml").write_bytes(b"[stream]\nmix = '\xff'\n"),
            {},
            "not valid TOML",
        ),
        (lambda: Path("config/.env").write_bytes(b"PG_HOST=\xff\n"), {}, "is not UTF-8 text"),
        (
            lambda: None,
            {"LOADGEN_STREAM_WRKERS": "3"},
            "env LOADGEN_STREAM_WRKERS: unknown setting",
        ),
        (
            lambda: _toml("[stream]\nrate = '5/fortnight'\n"),
            {},
            "config/settings.toml: stream.rate: unknown unit 'fortnight'",
        ),
        (lambda: None, {"LOADGEN_STREAM_DURATION": "soon"}, "env LOADGEN_STREAM_DURATION"),
        (lambda: None, {"LOADGEN_STREAM_MIX": "insert=abc"}, "env LOADGEN_STREAM_MIX"),
    ],
)
def test_bad_input_names_its_source(setup: Any, env: dict[str, str], message: str) -> None:
    setup()
    with pytest.raises(ConfigError) as info:
        config.load(env=env)
    assert message in str(info.value)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="^--log-level = 'LOUD' is not one of"):
        config.load({"logging": {"level": "LOUD"}}, env={})
    with pytest.raises(ConfigError, match=r"^--workers = 0 must be 1\.\."):
        config.load({"stream": {"workers": 0}}, env={})
