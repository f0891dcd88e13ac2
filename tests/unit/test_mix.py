"""Mix parsing: the --mix value forms and every kind of bad value."""

from __future__ import annotations

import math

import pytest

from loadgen.errors import ConfigError
from loadgen.ops.mix import default_mix, parse_mix
from loadgen.ops.registry import OP_NAMES


def test_none_and_default_give_the_default_weights() -> None:
    assert parse_mix(None) == default_mix() == parse_mix(" Default ")
    assert parse_mix(None)["insert_consulta"] == 30
    assert parse_mix(None)["admit_paciente"] == 0
    assert list(parse_mix(None)) == list(OP_NAMES)


def test_by_kind_splits_over_default_on_ops_in_proportion() -> None:
    mix = parse_mix("insert=35,update=15")
    assert mix["insert_consulta"] == pytest.approx(15.0)  # 35 * 30/70
    assert mix["insert_paciente"] == pytest.approx(2.5)
    assert mix["update_paciente"] == pytest.approx(4.0)  # 15 * 8/30
    assert mix["admit_paciente"] == mix["insert_paciente_convenio"] == 0
    assert mix["delete_consulta"] == 0
    assert sum(mix.values()) == pytest.approx(50.0)


def test_kind_with_no_default_on_op_splits_equally() -> None:
    mix = parse_mix("delete=10")
    assert mix["delete_consulta"] == mix["delete_paciente_convenio"] == 5
    assert sum(mix.values()) == 10


def test_by_name_sets_exact_weights_and_zeroes_the_rest() -> None:
    mix = parse_mix("insert_paciente=20, update_exame=5")
    assert mix["insert_paciente"] == 20
    assert mix["update_exame"] == 5
    assert sum(mix.values()) == 25


def test_mixed_forms_named_ops_are_taken_out_of_their_kind() -> None:
    mix = parse_mix("insert=70,update=30,delete_consulta=5,insert_paciente=0")
    assert mix["delete_consulta"] == 5
    assert mix["insert_paciente"] == 0
    # insert=70 now splits over consulta/exame/internacao (30:15:20)
    assert mix["insert_consulta"] == pytest.approx(70 * 30 / 65)
    assert mix["update_consulta"] == pytest.approx(10)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("insert=-1", "'-1'"),
        ("insert=abc", "'abc'"),
        ("insert=nan", "'nan'"),
        ("insert=inf", "'inf'"),
        ("insert_pacient=3", "'insert_pacient'"),
        ("", "empty"),
        ("   ", "empty"),
        (",", "empty"),
        ("insert", "'insert'"),
        ("insert=", "'insert='"),
        ("=5", "'=5'"),
        ("insert=1,,update=1", "empty item"),
        ("insert=0,update=0", "zero"),
        ("delete_consulta=1,delete_consulta=2", "twice"),
    ],
)
def test_bad_values_raise_config_error_naming_the_item(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_mix(spec)
    message = str(excinfo.value)
    assert message.startswith("--mix:")
    assert fragment in message
    assert "\n" not in message


def test_weights_are_finite_and_non_negative() -> None:
    for spec in (None, "insert=1", "update=2.5,delete=1e3", "admit_paciente=1"):
        assert all(math.isfinite(w) and w >= 0 for w in parse_mix(spec).values())
