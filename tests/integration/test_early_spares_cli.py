"""The console entry point spawns ``loadgen stream``'s spares before the CLI parses the line
(``loadgen.stream.early_spares``): a line the CLI then refuses leaves no process behind. Real
``python -m loadgen`` processes; their descendants are found by an environment marker."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.fixtures.cleanup import wait_until


def _marked(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (the command's descendants)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if marker.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    "args",
    [
        ["stream", "--workers", "2", "--no-such-option"],  # typer refuses it: exit 2
        ["stream", "--workers", "2", "--rate", "5/lightyear"],  # the settings refuse it
    ],
)
def test_a_refused_stream_line_leaves_no_spare(args: list[str], tmp_path: Path) -> None:
    marker = f"LOADGEN_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, marker.split("=")[0]: marker.split("=")[1]}
    env.pop("LOADGEN_DSN", None)  # bad input is refused before any server is looked for
    result = subprocess.run(
        [sys.executable, "-m", "loadgen", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert wait_until(lambda: not _marked(marker), 5.0), f"left behind: {_marked(marker)}"
