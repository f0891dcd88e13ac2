"""Settings validated once: ranges, typed values, empty values, DSNs and where the server is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loadgen import config, limits
from loadgen.dsn_resolution import resolve_dsn
from loadgen.errors import ConfigError, DatabaseUnavailableError
from loadgen.stream.coordinator import RunSpec
from loadgen.stream.rates import parse_rate

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    return tmp_path


def _problem(
    flags: dict[str, dict[str, object]] | None = None,
    env: dict[str, str] | None = None,
    toml: str | None = None,
) -> str:
    if toml is not None:
        Path("config/settings.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        config.load(flags, env=env or {})
    return str(info.value)


@pytest.mark.parametrize(
    ("section", "key", "value", "label"),
    [
        ("stream", "batch_size", 100_000_000, "--batch-size"),
        ("stream", "batch_size", 0, "--batch-size"),
        ("stream", "report_interval_s", 1e-9, "--report-interval"),
        ("stream", "report_interval_s", 1e-10, "--report-interval"),
        ("stream", "report_interval_s", 3601.0, "--report-interval"),
        ("stream", "workers", limits.max_workers() + 1, "--workers"),
        ("stream", "max_ops", 10**12 + 1, "--max-ops"),
        ("stream", "burst", 0, "--burst"),
        ("stream", "scenario_weight", 1.5, "--scenario-weight"),
        ("seed", "scale", 1e12, "--scale"),
        ("seed", "scale", 0.0, "--scale"),
        ("seed", "workers", 1000, "--workers"),
        ("seed", "seed", -1, "--seed"),
    ],
)
def test_flag_out_of_range_names_the_flag_and_the_range(
    section: str, key: str, value: object, label: str
) -> None:
    bounds = limits.range_of(section, key)
    assert bounds is not None
    message = _problem({section: {key: value}})
    assert message == f"{label} = {value!r} must be {bounds.text()}"


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ("[db]\nport = 99999\n", {}, "config/settings.toml: db.port = 99999 must be 1..65535"),
        ("", {"PG_PORT": "0"}, "env PG_PORT: db.port = 0 must be 1..65535"),
        ("", {"BATCH_SIZE": "20000"}, "env BATCH_SIZE: stream.batch_size = 20000 must be"),
        (
            "[seed]\nchunk_rows = 10\n",
            {},
            "unknown key seed.chunk_rows (allowed: append, block_rows",
        ),
        ("[logging]\nrotate_when = 'weekly'\n", {}, "logging.rotate_when = 'weekly' is not one of"),
        ("", {"LOADGEN_STREAM_RATE": "1e20/s"}, "env LOADGEN_STREAM_RATE: stream.rate: rate"),
        ("", {"LOADGEN_DB_DSN": "host=h port=70000"}, "port '70000' must be 1..65535"),
    ],
)
def test_file_and_env_values_name_their_source(toml: str, env: dict[str, str], needle: str) -> None:
    assert needle in _problem(env=env, toml=toml)


@pytest.mark.parametrize("flag", ["rate", "mix", "duration", "arrivals", "ledger", "profile"])
def test_an_empty_flag_is_bad_input_but_an_empty_variable_is_unset(flag: str) -> None:
    message = _problem({"stream": {flag: " "}})
    assert message.startswith(f"--{flag}: empty value")
    settings = config.load(env={f"LOADGEN_STREAM_{flag.upper()}": ""})
    assert getattr(settings.stream, flag) == getattr(config.StreamConfig(), flag)


@pytest.mark.parametrize(
    ("dsn", "needle"),
    [
        ("", "--dsn: empty value"),
        ("postgresql://u:S3cretPW@h/x?connect_timeout=abc", "connect_timeout 'abc'"),
        ("postgresql://u:S3cretPW@h:99999/x", "port '99999' must be 1..65535"),
        ("host=h password=S3cretPW port=abc", "port 'abc'"),
    ],
)
def test_bad_dsn_flag_is_one_line_without_the_password(dsn: str, needle: str) -> None:
    message = _problem({"db": {"dsn": dsn}})
    assert needle in message and "S3cretPW" not in message and "\n" not in message


def test_strings_are_parsed_once_into_typed_values() -> None:
    settings = config.load(
        {"stream": {"rate": "200/min", "duration": "5m", "mix": "insert=1"}}, env={}
    )
    stream = settings.stream
    assert stream.rate == config.Rate(text="200/min", per_s=pytest.approx(200 / 60))
    assert stream.duration == 300.0
    assert stream.mix is not None and stream.mix.weights["insert_consulta"] > 0
    assert stream.mix.weights["update_exame"] == 0
    spec = RunSpec.from_settings(stream, dsn="")
    assert (spec.rate_per_s, spec.duration_s, spec.mix) == (
        stream.rate.per_s,
        300.0,
        dict(stream.mix.weights),
    )
    shown = config.as_dict(settings)["stream"]
    assert (shown["rate"], shown["mix"], shown["duration"]) == ("200/min", "insert=1", 300.0)


def test_unlimited_and_paced_runs_differ() -> None:
    unlimited = RunSpec.from_settings(config.load({"stream": {"rate": "inf/s"}}, env={}).stream, "")
    paced = RunSpec.from_settings(config.load(env={}).stream, "")
    assert (unlimited.rate_per_s, unlimited.is_paced) == (None, False)
    assert (paced.rate_per_s, paced.is_paced) == (None, True)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"arrivals": "poisson"}, "--arrivals = 'poisson' needs a finite --rate"),
        ({"arrivals": "uniform", "rate": "unlimited"}, "--arrivals = 'uniform' needs a finite"),
        ({"burst": 10}, "--burst = 10 sizes the token bucket"),
        ({"burst": 10, "rate": "5/s", "arrivals": "poisson"}, "--burst = 10 sizes the token"),
    ],
)
def test_schedule_options_without_a_schedule_are_bad_input(
    flags: dict[str, object], needle: str
) -> None:
    settings = config.load({"stream": flags}, env={})
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config.check_stream(settings)


def test_schedule_options_with_a_schedule_pass() -> None:
    ok = config.load({"stream": {"rate": "5/s", "arrivals": "token-bucket", "burst": 3}}, env={})
    config.check_stream(ok)  # no error
    from_file = config.load(env={"LOADGEN_STREAM_ARRIVALS": "poisson"})
    with pytest.raises(ConfigError, match="env LOADGEN_STREAM_ARRIVALS: stream.arrivals"):
        config.check_stream(from_file)


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        ({"PG_PORT": "5433"}, "", {"host": "localhost", "port": "5433"}),
        ({"PG_DATABASE": "clinica"}, "", {"host": "localhost", "dbname": "clinica"}),
        ({}, "[db]\nport = 6543\n", {"host": "localhost", "port": "6543"}),
        ({"PG_HOST": "db.example", "PG_PORT": "5434"}, "", {"host": "db.example", "port": "5434"}),
    ],
)
def test_a_port_or_database_without_a_host_means_localhost(
    env: dict[str, str], toml: str, expected: dict[str, str]
) -> None:
    Path("config/settings.toml").write_text(toml)
    dsn, source = resolve_dsn(config.load(env=env), start_embedded=False)
    assert source != "embedded"
    params = dict(item.split("=", 1) for item in dsn.split())
    assert {k: params[k] for k in expected} == expected
    assert ("host localhost" in source) == ("PG_HOST" not in env)


def test_user_and_password_alone_do_not_select_a_server() -> None:
    settings = config.load(env={"PG_USER": "u", "PG_PASSWORD": "p"})
    with pytest.raises(DatabaseUnavailableError, match="embedded server"):
        resolve_dsn(settings, start_embedded=False)  # the embedded server, not running here


def test_settings_toml_documents_every_key_with_its_range() -> None:
    text = (REPO / "config" / "settings.toml").read_text(encoding="utf-8")
    sections = re.split(r"^\[(\w+)\]$", text, flags=re.MULTILINE)
    documented = {name: body for name, body in zip(sections[1::2], sections[2::2], strict=True)}
    assert set(documented) == set(config.SECTIONS)
    for section in config.SECTIONS:
        for key in config._field_types(section):
            block = re.search(
                rf"^# {key} = .*(?:\n#  +.*)*", documented[section], flags=re.MULTILINE
            )
            assert block, f"{section}.{key} is not in config/settings.toml"
            bounds = limits.range_of(section, key)
            if bounds is None or bounds is limits.SEED_ROWS_RANGE:
                continue  # the seed table counts share one range, stated above them
            if key == "workers":  # depends on the machine
                assert f"{limits.WORKERS_PER_CORE} per CPU core" in block.group(0)
            else:
                assert bounds.text() in block.group(0), (section, key, bounds.text())
    assert limits.SEED_ROWS_RANGE.text() in documented["seed"]
    config.load(config_path=REPO / "config" / "settings.toml", env={})  # all commented: valid


def test_parse_rate_is_what_config_stores() -> None:
    stored = config.load({"stream": {"rate": "3/h"}}, env={}).stream.rate
    assert stored is not None and stored.per_s == parse_rate("3/h")


@pytest.mark.parametrize(
    ("flags", "env", "needle"),
    [
        ({"cdc": {"slot": "Bad-Slot"}}, {}, "--slot 'Bad-Slot': a slot name is lowercase"),
        ({"cdc": {"debezium_slot": "x y"}}, {}, "--slot 'x y': a slot name"),
        ({"cdc": {"publication": "1pub"}}, {}, "--publication '1pub': a publication name"),
        (None, {"LOADGEN_CDC_SLOT": "UP"}, "env LOADGEN_CDC_SLOT: cdc.slot 'UP': a slot name"),
    ],
)
def test_cdc_names_are_checked_when_settings_load(
    flags: dict[str, dict[str, object]] | None, env: dict[str, str], needle: str
) -> None:
    assert needle in _problem(flags, env=env)


def test_an_empty_variable_leaves_the_file_value() -> None:
    Path("config/settings.toml").write_text("[stream]\nworkers = 3\nrate = '5/s'\n")
    settings = config.load(env={"LOADGEN_STREAM_WORKERS": "", "LOADGEN_STREAM_RATE": ""})
    assert settings.stream.workers == 3  # cannot be None: the file's value stays
    assert settings.stream.rate is None  # may be None: the empty variable unsets it
    assert settings.sources["stream.workers"] == "config/settings.toml"
