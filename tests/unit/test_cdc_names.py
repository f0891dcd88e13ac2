"""Slot and publication names are checked before anything reaches the server, and their
defaults follow the schema outside ``public``."""

from __future__ import annotations

import pytest

from loadgen import config
from loadgen.cdc import names, schema_names
from loadgen.config import Settings
from loadgen.errors import ConfigError


@pytest.mark.parametrize("bad", ["Bad-Slot!", "UPPER", "", "a b", "x" * 64, "é"])
def test_bad_slot_names(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"--slot .*lowercase letters, digits and underscore"):
        names.check_slot(bad)


@pytest.mark.parametrize("bad", ["my-pub", "1pub", "", "a;drop", "p" * 64, "é" * 32])
def test_bad_publication_names(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"--publication .*at most 63 bytes"):
        names.check_publication(bad)


def test_good_names_pass() -> None:
    assert names.check_slot("loadgen_verify_2" + "x" * 47) == "loadgen_verify_2" + "x" * 47
    assert names.check_publication("Loadgen_pub$1") == "Loadgen_pub$1"


def _settings(**env: str) -> Settings:
    return config.load(env={f"LOADGEN_CDC_{k.upper()}": v for k, v in env.items()})


def test_public_keeps_the_fixed_defaults_other_schemas_get_their_own() -> None:
    s = _settings()
    public = schema_names.for_schema(s, "public")
    assert (public.slot, public.publication, public.debezium_slot) == (
        "loadgen_verify", "loadgen_pub", "loadgen_debezium",
    )  # fmt: skip
    assert schema_names.for_schema(s, None) == s.cdc  # no current schema: as they are
    a, b = schema_names.for_schema(s, "clinic_a"), schema_names.for_schema(s, "clinic_b")
    assert (a.slot, a.publication, a.debezium_slot) == (
        "loadgen_verify_clinic_a", "loadgen_pub_clinic_a", "loadgen_debezium_clinic_a",
    )  # fmt: skip
    assert {a.slot, a.publication, a.debezium_slot} & {
        b.slot,
        b.publication,
        b.debezium_slot,
    } == set()


def test_a_name_given_by_any_layer_is_used_as_given_in_any_schema() -> None:
    s = _settings(slot="my_slot")
    got = schema_names.for_schema(s, "clinic_a")
    assert (got.slot, got.publication) == ("my_slot", "loadgen_pub_clinic_a")
    s = config.load({"cdc": {"publication": "Shared_Pub"}}, env={})
    assert schema_names.for_schema(s, "clinic_a").publication == "Shared_Pub"


@pytest.mark.parametrize(
    ("schema", "key", "flag"),
    [
        ("Clinic", "slot", "--slot"),  # a slot name is lower case only
        ("clínica", "slot", "--slot"),
        ("c" * 49, "slot", "--slot"),  # loadgen_verify_ + 49 = 64 characters
        ("c" * 47, "debezium_slot", "--slot"),  # loadgen_debezium_ + 47 = 64
        ("a-b", "publication", "--publication"),
    ],
)
def test_a_schema_that_makes_no_valid_name_is_refused_naming_the_fix(
    schema: str, key: str, flag: str
) -> None:
    with pytest.raises(ConfigError, match=rf"schema .*{flag} NAME \(or set cdc.{key}\)"):
        schema_names.for_schema(_settings(), schema, (key,))
    assert schema_names.for_schema(_settings(**{key: "given"}), schema, (key,))  # the fix


def test_only_the_names_a_command_uses_are_checked() -> None:
    got = schema_names.for_schema(_settings(), "c" * 48, ("publication",))  # pub fits 63
    assert got.publication == "loadgen_pub_" + "c" * 48 and got.slot == "loadgen_verify"
