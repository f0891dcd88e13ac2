"""A process that has stopped ignores SIGINT and SIGTERM to its exit (``ignore_for_exit``).

CPython's finalization clears a Python-level handler and then resets the signal to its
default, before its last collection: a SIGTERM caught in between is printed as a traceback
(``OSError: Signal 15 ignored due to race condition``), one after it kills the process. Here a
finalizer sends the SIGTERM from inside that collection, deterministically: the process must
still exit 0 with nothing on stderr.
"""

from __future__ import annotations

import signal
import subprocess
import sys

# An object in a reference cycle is collected by the interpreter's final collection, which
# comes after its signal handling is torn down; its finalizer sends this process SIGTERM.
_LATE_SIGTERM = """
import os, signal

class Late:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)

late = Late()
late.cycle = late
del late
"""

_SPARE = """
import multiprocessing, os, signal, sys
from loadgen.stream.worker_entry import run_spare

channel, _ = multiprocessing.Pipe()
spec_reader, spec_writer = multiprocessing.Pipe(duplex=False)
spec_writer.close()  # no spec will come: the spare exits without a word
stop = multiprocessing.Event()
run_spare(channel, spec_reader, stop, multiprocessing.Event(), None, None, os.getppid())
print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, flush=True)
"""

_HANDLED = """
import signal
from loadgen import interrupts

signal.signal(signal.SIGTERM, lambda signum, frame: None)  # a stop flag's, as in a worker
interrupts.ignore_for_exit()
print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, flush=True)
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code + _LATE_SIGTERM],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_handled_sigterm_at_the_interpreter_exit_kills_without_the_fix() -> None:
    """The premise: with a Python handler left in place, the late SIGTERM kills the process."""
    done = _run("import signal\nsignal.signal(signal.SIGTERM, lambda s, f: None)\n")
    assert done.returncode == -signal.SIGTERM, (done.returncode, done.stderr)


def test_ignore_for_exit_survives_a_sigterm_while_the_interpreter_exits() -> None:
    done = _run(_HANDLED)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "True", "")


def test_a_spare_with_no_spec_ignores_sigterm_on_its_way_out() -> None:
    done = _run(_SPARE)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "True", "")
