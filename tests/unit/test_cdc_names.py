"""Slot and publication names are checked before anything reaches the server."""

from __future__ import annotations

import pytest

from loadgen.cdc import names
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
