"""``loadgen stream``'s early spares: how many the raw command line asks for, and that the entry
point's spares are the ones the command uses (a real console-script process)."""

from __future__ import annotations

import pytest

from loadgen.stream import early_spares
from loadgen.stream.spares import GUESS_WORKERS, default_max_starting, spare_count


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        (["stream"], GUESS_WORKERS),
        (["stream", "--workers", "3"], 3),
        (["stream", "--workers=3"], 3),
        (["stream", "-w", "3"], 3),
        (["stream", "-w3"], 3),
        (["stream", "--workers", "2", "--max-ops", "1"], 1),  # the other worker has no share
        (["stream", "--max-ops=1"], 1),
        (["stream", "--workers", "4", "--max-ops", "0"], 0),
        (["--dsn", "stream", "stream", "-w", "3"], 3),  # a global option's value is not the command
        (["--dsn=x", "--config", "c.toml", "--log-level", "DEBUG", "stream"], GUESS_WORKERS),
        (["stream", "--workers", "lots"], GUESS_WORKERS),  # typer gives the error
        (["stream", "--workers", "3", "--help"], 0),
        (["stream", "-h"], 0),
        (["--help"], 0),
        (["seed", "--workers", "3"], 0),
        (["--verbose", "stream"], 0),  # unknown global option: the CLI refuses the line
        (["cdc", "stream"], 0),
        ([], 0),
        (["stream", "--workers"], GUESS_WORKERS),
    ],
)
def test_spares_wanted_reads_the_command_line_as_the_cli_will(argv: list[str], wanted: int) -> None:
    assert early_spares.spares_wanted(argv) == min(wanted, default_max_starting())


def test_spare_count_caps_by_the_workers_that_have_a_share() -> None:
    assert spare_count(8, 3) == min(3, default_max_starting())
    assert spare_count(None, None) == min(GUESS_WORKERS, default_max_starting())
    assert spare_count(10_000, None) == default_max_starting()
    assert spare_count(-1, None) == 0


def test_untaken_early_spares_are_reaped() -> None:
    early_spares.spawn_early(["stream", "-w", "1"])
    spares = early_spares.take()
    assert spares is not None and len(spares.waiting) == 1
    process = spares.waiting[0].process
    assert early_spares.take() is None  # handed over once
    early_spares._early = spares  # as if the command never took them
    early_spares.close_untaken()
    assert not process.is_alive() and process.exitcode is not None
