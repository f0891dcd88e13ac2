"""Free connections: what the server could ever give a role, and what it has free now."""

from __future__ import annotations

import pytest

from loadgen.capacity import Capacity, check
from loadgen.errors import ConfigError, DatabaseUnavailableError


def _cap(**changes: object) -> Capacity:
    base: dict[str, object] = {
        "max_connections": 100,
        "reserved": 3,
        "in_use": 10,
        "role": "app",
        "role_limit": None,
        "role_in_use": 1,
        "database": "db",
        "database_limit": None,
        "database_in_use": 1,
    }
    base.update(changes)
    return Capacity(**base)  # type: ignore[arg-type]


def test_free_counts_the_asking_connection_as_available() -> None:
    assert _cap().free()[0] == 100 - 3 - 10 + 1


@pytest.mark.parametrize(
    ("cap", "needed", "error", "needle"),
    [
        (_cap(), 98, ConfigError, "at most 97 (max_connections 100 minus 3 reserved)"),
        (_cap(in_use=90), 20, DatabaseUnavailableError, "has 8 free now"),
        (_cap(role_limit=4), 5, ConfigError, "role 'app' CONNECTION LIMIT"),
        (_cap(role_limit=4, role_in_use=3), 3, DatabaseUnavailableError, "has 2 free now"),
        (_cap(database_limit=2), 3, ConfigError, "database 'db' CONNECTION LIMIT"),
    ],
)
def test_check_says_which_limit(
    cap: Capacity, needed: int, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error) as info:
        check(cap, needed, "--workers 9")
    assert needle in str(info.value) and str(info.value).startswith("--workers 9 needs")
    assert isinstance(info.value, error) and type(info.value) is error


def test_check_passes_at_the_limit() -> None:
    check(_cap(), 97 - 10 + 1, "--workers")  # exactly what is free
    check(_cap(role_limit=4, role_in_use=1), 4, "--workers")
