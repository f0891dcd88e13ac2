"""The worker processes' entry points, as the coordinator names them (``Process(target=...)``).

The spawn method pickles a process's target by reference; naming these light functions instead
of ``loadgen.stream.worker.run_worker`` keeps the worker's modules (its loop, transactions,
recovery, the operations' SQL) out of the coordinator's process: they are imported in each
worker, where they run (``bench/bench_startup.py``: the coordinator reaches its first spawn
sooner). ``run_spare`` is a worker spawned before its spec exists (``loadgen.stream.spares``).
"""

from __future__ import annotations

import gc
import pickle
import signal
from multiprocessing.connection import Connection
from types import FrameType
from typing import Any

SPEC_POLL_S = 0.1  # a spare waiting for its spec looks at its stop conditions this often


def run_worker(*args: Any) -> None:
    """``loadgen.stream.worker.run_worker(*args)``, imported in the worker's own process."""
    from loadgen.stream.worker import run_worker as run

    run(*args)


def run_spare(
    channel: Connection,
    spec_conn: Connection,
    stop_event: Any,
    start_event: Any,
    start_at_ns: Any,
    tally: Any,
    parent_pid: int,
) -> None:
    """Process entry point of a spare: stop conditions first, then the worker's imports, then
    wait for the ``WorkerSpec`` on ``spec_conn`` and run it (``run_worker``) with ``tally`` as
    its shared commit tally.

    Exits 0 without a word when no spec comes: EOF on ``spec_conn`` (not needed, or the
    coordinator died), SIGTERM (sent, or the kernel's parent-death signal), the run's stop
    event, or the coordinator re-parented away. SIGINT is ignored, as in every worker.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signalled: list[int] = []

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        signalled.append(signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    from loadgen.stream.stopping import ParentWatch

    parent = ParentWatch(parent_pid)
    parent.arm(signal.SIGTERM)
    import dataclasses

    # what a worker needs before its first operation, imported while the coordinator starts
    from loadgen.datagen import build_vocab
    from loadgen.ops import workload  # noqa: F401
    from loadgen.stream.worker import run_worker as run

    build_vocab()
    gc.collect()  # the imports' garbage, while no spec is here yet (the worker only freezes)
    gc.freeze()
    data = None
    while not (signalled or stop_event.is_set() or parent.is_gone()):
        try:
            if spec_conn.poll(SPEC_POLL_S):
                data = spec_conn.recv_bytes()
                break
        except (EOFError, OSError):  # the coordinator closed it (not needed) or died
            break
    spec_conn.close()
    if data is None:
        channel.close()
        from loadgen import interrupts

        interrupts.ignore_for_exit()  # a late SIGTERM must not race the interpreter's exit
        return
    spec = dataclasses.replace(pickle.loads(data), tally=tally)
    run(spec, channel, stop_event, start_event, start_at_ns, was_signalled=lambda: bool(signalled))
