"""Whether a run's workers are alive: a dead worker or one silent too long aborts the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from loadgen.stream.aborts import Abort
from loadgen.stream.clock import NS_PER_S
from loadgen.stream.fleet import Fleet, WorkerHandle


def died(h: WorkerHandle) -> Abort:
    """The abort for a worker that exited before it said it was done (with its exit code)."""
    h.process.join(0.5)  # its exit code, once the kernel has it
    return Abort(f"worker {h.worker_id} died (exit code {h.process.exitcode})", "worker_failed")


def check(
    fleet: Fleet, now_ns: int, silence_timeout_s: float, poll: Callable[[float], None]
) -> Abort | None:
    """The first started, unfinished worker that died (its pipe at EOF or its process gone,
    after ``poll(0.2)`` read what it may still have sent) or has been silent for more than
    ``silence_timeout_s`` seconds (``now_ns``: the run's monotonic clock); None if all live."""
    for h in fleet.handles.values():
        if h.is_done or not h.is_started:
            continue
        if h.is_eof or not h.process.is_alive():
            poll(0.2)  # its last words may still be in the pipe
            if not h.is_done:
                return died(h)
        elif (now_ns - h.last_seen_ns) / NS_PER_S > silence_timeout_s:
            return Abort(
                f"worker {h.worker_id} silent for more than {silence_timeout_s:g} s",
                "worker_failed",
            )
    return None


def late(late: Sequence[WorkerHandle], stop_timeout_s: float) -> Abort:
    """The abort for workers that did not say done within ``stop_timeout_s`` of the run's
    natural end (``late``: not empty): the first dead one's, else "did not finish"."""
    dead = [h for h in late if h.is_eof or not h.process.is_alive()]
    if dead:
        return died(dead[0])
    ids = ", ".join(str(h.worker_id) for h in late)
    return Abort(
        f"worker {ids} did not finish within {stop_timeout_s:g} s of the end", "worker_failed"
    )


def check_starting(fleet: Fleet, now_ns: int, start_timeout_s: float) -> Abort | None:
    """The first worker still starting ``start_timeout_s`` seconds after its spawn (or None).
    A starting worker is not silent (the start timeout rules): its ``last_seen_ns`` is now."""
    overdue = None
    for h in fleet.handles.values():
        if not h.is_starting:
            continue
        h.last_seen_ns = now_ns
        if overdue is None and (now_ns - h.started_ns) / NS_PER_S > start_timeout_s:
            overdue = Abort(
                f"worker {h.worker_id} not ready after {start_timeout_s:g} s", "start_failed"
            )
    return overdue
