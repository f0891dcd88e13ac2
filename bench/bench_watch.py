"""`cdc watch`: capacity vs the fastest stream, RSS over a long run, pgoutput lag.

    .venv/bin/python bench/bench_watch.py capacity [NUM_OPS]        # default 30000
    .venv/bin/python bench/bench_watch.py soak [SECONDS] [RATE]     # default 300 s at 2000/s
    .venv/bin/python bench/bench_watch.py lag [SECONDS] [RATE]      # default 30 s at 1000/s
    .venv/bin/python bench/bench_watch.py markers [SECONDS] [RATE]  # default 30 s at 1/h

- capacity: an unlimited-rate `stream` (2 workers, batches of 10) with `watch` beside it on
  one slot (does it keep up: its pending count, how long after the stream's end it is caught
  up), then `watch` over the same backlog on a second slot created before the load (its
  capacity: changes per second of wall time, start-up excluded). Ratio = watch / stream.
- soak: `watch` beside a long `stream` at RATE; the RSS series from its interval records (the
  start, every 5 min, the warm-up mark, the end) and the growth after the warm-up (the bounded
  memories full and their tables at their last resize); then `cdc verify` of the same data on
  a second slot: the same verdict?
- lag: `watch` beside a `stream` at RATE; the run's lag p50/p99 next to a bare psycopg2
  consumer of a second slot that only reads messages and stamps Commits (the reference: what
  the server and the replication protocol cost; the difference is what watch adds).
- markers: `stream --markers 0.2` at RATE (default 1/h: the tables idle) with `watch` beside
  it; the markers' lag (capture − the payload's ts) in watch next to the same bare consumer's.

Needs BENCH_DSN (default postgresql://postgres@127.0.0.1:5432/test, wal_level=logical).
Figures on a shared machine are noisy: read the ratios.
"""

from __future__ import annotations

import os
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BENCH_DSN = os.environ.get("BENCH_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PY = sys.executable


def _dsn(schema: str) -> str:
    params = conninfo_to_dict(BENCH_DSN)
    params["options"] = f"{params.get('options') or ''} -c search_path={schema}".strip()
    return make_conninfo(**params)


class Rig:
    def __init__(self, slots: int) -> None:
        tag = uuid.uuid4().hex[:8]
        self.schema, self.pub = f"bench_watch_{tag}", f"bench_watch_pub_{tag}"
        self.slots = [f"bench_watch_{i}_{tag}" for i in range(slots)]
        self.dsn = _dsn(self.schema)
        self.work = Path(tempfile.mkdtemp(prefix="bench-watch-"))
        self.ledger = self.work / "ledger"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGEN_", "PG_"))}
        self.env.update({"LOADGEN_DSN": self.dsn, "LOADGEN_LOGGING_FILE": str(self.work / "log")})
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Rig:
        with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
        self.run("init")
        self.run("seed", "--scale", "0.2", "--seed", "1")
        for s in self.slots:
            self.run("cdc", "setup", "--slot", s, "--publication", self.pub)
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        with psycopg.connect(BENCH_DSN, autocommit=True) as conn:
            for s in self.slots:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s AND NOT active",
                    (s,),
                )
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(self.pub)))
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([PY, "-m", "loadgen", *args], env=self.env, cwd=self.work,
                           capture_output=True, text=True, check=False)  # fmt: skip
        if r.returncode not in (0, 1):
            raise SystemExit(f"loadgen {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def stream(self, *args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(
            [PY, "-m", "loadgen", "stream", "--workers", "2", "--batch-size", "10", "--seed", "1",
             "--ledger", str(self.ledger), "--no-progress", "--summary-json",
             str(self.work / "stream.json"), *args],
            env=self.env, cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(p)
        return p

    def watch(self, slot: str, *args: str) -> Watch:
        p = subprocess.Popen(
            [PY, "-m", "loadgen", "cdc", "watch", "--ledger", str(self.ledger), "--slot", slot,
             "--publication", self.pub, "--json", "--grace", "60", *args],
            env=self.env, cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(p)
        return Watch(p)


class Watch:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.t0 = time.monotonic()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.records.append((time.monotonic(), orjson.loads(line)))

    def intervals(self) -> list[dict[str, Any]]:
        return [r for _, r in self.records if r.get("type") == "interval"]

    def final(self, timeout_s: float = 3600) -> dict[str, Any]:
        self.proc.wait(timeout=timeout_s)
        self._t.join(timeout=30)
        return next(r for _, r in self.records if r.get("type") == "final")


def capacity(num_ops: int) -> None:
    with Rig(2) as rig:
        live = rig.watch(rig.slots[0], "--until-caught-up", "--interval", "0.5")
        time.sleep(3)  # watch started and waiting for the ledger
        t0 = time.monotonic()
        s = rig.stream("--rate", "unlimited", "--max-ops", str(num_ops))
        s.wait()
        stream_end = time.monotonic()
        stream_wall = stream_end - t0
        fin = live.final()
        caught = next((t for t, r in live.records if r.get("type") == "final"), stream_end)
        ints = live.intervals()
        changes = fin["counts"]["ledger_changes"]
        print(f"watch bench capacity: {num_ops:,} operations, {changes:,} ledger changes,"
              f" server {BENCH_DSN}, verdict live ok={fin['ok']}")  # fmt: skip
        st = orjson.loads((rig.work / "stream.json").read_bytes())
        stream_rate = changes / float(st["elapsed_s"])
        print(
            f"stream (unlimited, 2 workers): {st['elapsed_s']:.1f} s of load"
            f" ({stream_wall:.1f} s with start-up), {stream_rate:,.0f} changes/s"
        )
        print(
            f"watch beside it: max pending {max(r['pending'] for r in ints):,}, caught up"
            f" {max(0.0, caught - stream_end):.1f} s after the stream process ended"
            f" (its --interval 0.5 s and the final sweep included)"
        )
        # the same changes again, as a backlog, on the second slot: watch's own capacity
        t1 = time.monotonic()
        back = rig.watch(rig.slots[1], "--until-caught-up", "--interval", "0.5")
        bfin = back.final()
        wall = time.monotonic() - t1
        bi = back.intervals()
        first = next(i for i, r in enumerate(bi) if r["matched"] > 0)
        busy = bfin["elapsed_s"] - (bi[first - 1]["elapsed_s"] if first else 0.0)
        rate = bfin["counts"]["matched"] / busy
        print(
            f"watch over the backlog: {bfin['counts']['matched']:,} matched in {busy:.1f} s"
            f" (first match .. end; wall with start-up {wall:.1f} s): {rate:,.0f} changes/s"
        )
        print(
            f"ratio watch capacity / stream rate: {rate / stream_rate:.2f}"
            f"; backlog verdict ok={bfin['ok']}"
        )


def soak(seconds: float, rate: float) -> None:
    from loadgen.cdc.watch_match import RECENT, ROW_WINDOW

    load0 = os.getloadavg()
    with Rig(2) as rig:  # slot 0: the watch; slot 1: a `cdc verify` of the same data after
        w = rig.watch(rig.slots[0], "--interval", "5", "--no-progress")
        s = rig.stream("--rate", f"{rate:g}/s", "--duration", f"{seconds:g}s")
        s.wait()
        time.sleep(10)
        w.proc.terminate()
        fin = w.final()
        ints = w.intervals()
        load1 = os.getloadavg()
        ver = orjson.loads(
            rig.run("cdc", "verify", "--ledger", str(rig.ledger), "--slot", rig.slots[1],
                    "--publication", rig.pub, "--consume", "--json").stdout
        )  # fmt: skip
        print(
            f"watch bench soak: {seconds:g} s at {rate:g}/s, {fin['counts']['matched']:,}"
            f" matched, verdict ok={fin['ok']}; load average {load0[0]:.2f} at the start,"
            f" {load1[0]:.2f} at the end (1 min)"
        )

        # warm-up: the bounded memories full (rows followed, matched keys, transactions: the
        # last fill later, one transaction holding several changes) *and* the dicts' tables at
        # their last resize: a dict keeping a window of W entries under churn (one in, the
        # oldest out) doubles once more at ~1.75 W insertions, e.g. 5 -> 10 MiB for W = 100,000.
        def full(r: dict[str, Any]) -> bool:
            return (r["keys_alive"] >= ROW_WINDOW and r.get("recent_keys", 0) >= RECENT
                    and r.get("recent_txns", 0) >= RECENT)  # fmt: skip

        warm_i = next(
            (i for i, r in enumerate(ints) if full(r) and r["matched"] >= 2 * RECENT), None
        )
        every = max(1, round(300 / 5))  # a record every 5 s: every 5 min
        show = sorted({0, len(ints) - 1, *range(0, len(ints), every),
                       *([warm_i] if warm_i is not None else [])})  # fmt: skip
        print("elapsed_s  matched     pending  keys_alive  recent_txns  rss_mib")
        for i in show:
            r = ints[i]
            mark = "  <- warm-up" if i == warm_i else ""
            print(f"{r['elapsed_s']:9.0f} {r['matched']:>9,} {r['pending']:>9,}"
                  f" {r['keys_alive']:>10,} {r.get('recent_txns', 0):>12,}"
                  f" {r['rss_mib']:>8.1f}{mark}")  # fmt: skip
        end = statistics.median(r["rss_mib"] for r in ints[-6:])
        if warm_i is None:
            print(f"warm-up not reached: windows not full or fewer than {2 * RECENT:,} matched")
        else:
            base = ints[warm_i]["rss_mib"]
            after = [r["rss_mib"] for r in ints[warm_i:]]
            print(
                f"RSS after warm-up (windows of {RECENT:,} keys, {RECENT:,} transactions and"
                f" {ROW_WINDOW:,} rows full, {2 * RECENT:,} matched, at"
                f" {ints[warm_i]['elapsed_s']:.0f} s) {base:.1f} MiB, at the end {end:.1f} MiB:"
                f" growth {100 * (end - base) / base:+.1f} % (max after it {max(after):.1f} MiB)"
            )
        print(
            f"keys alive at the end {ints[-1]['keys_alive']:,};"
            f" max RSS {max(r['rss_mib'] for r in ints):.1f} MiB"
        )
        fails = {c["name"]: c["count"] for c in fin["checks"] if not c["ok"]}
        vfails = {c["name"]: c["count"] for c in ver["checks"] if not c["ok"]}
        print(
            f"cdc verify of the same data (second slot): ok={ver['ok']}, matched"
            f" {ver['counts'].get('matched', 0):,}, failed {vfails or '-'};"
            f" watch ok={fin['ok']}, failed {fails or '-'}:"
            f" {'same verdict' if ver['ok'] == fin['ok'] else 'DIFFERENT VERDICTS'}"
        )


_BEGIN = struct.Struct(">QqI").unpack_from
_COMMIT = struct.Struct(">bQQq").unpack_from


def bare(slot: str, pub: str, seconds: float, out: str) -> None:
    """The reference consumer: read the slot, stamp each Commit, confirm, nothing else."""
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(
        BENCH_DSN, connection_factory=psycopg2.extras.LogicalReplicationConnection
    )
    cur = conn.cursor()
    cur.start_replication(slot_name=slot, decode=False,
                          options={"proto_version": "1", "publication_names": pub,
                                   "messages": "true"})  # fmt: skip
    lags: list[float] = []
    marker_lags: list[float] = []
    markers: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        msg = cur.read_message()
        if msg is None:
            select.select([cur], [], [], 0.2)
            continue
        data = msg.payload
        if data[0] == 0x4D:  # a logical message: (flags, lsn, prefix, length, content)
            end = data.index(b"\x00", 10)
            if data[10:end] == b"loadgen":
                markers.append(data[end + 5 :])
        elif data[0] == 0x43:
            _, _, end_lsn, ts_us = _COMMIT(data, 1)
            now = time.time()
            lags.append((now - (ts_us / 1e6 + 946_684_800)) * 1000)
            marker_lags.extend((now - orjson.loads(m)["ts"]) * 1000 for m in markers)
            markers.clear()
            cur.send_feedback(flush_lsn=end_lsn)
    conn.close()
    Path(out).write_bytes(orjson.dumps(lags))
    Path(out + ".markers").write_bytes(orjson.dumps(marker_lags))


def _pct(vals: list[float], q: float) -> float:
    s = sorted(vals)
    return s[min(len(s) - 1, int(len(s) * q / 100))] if s else float("nan")


def lag(seconds: float, rate: float) -> None:
    with Rig(2) as rig:
        w = rig.watch(rig.slots[0], "--interval", "1", "--no-progress")
        out = rig.work / "bare.json"
        argv = [PY, __file__, "_bare", rig.slots[1], rig.pub, str(seconds + 15), str(out)]
        ref = subprocess.Popen(argv, env={**rig.env, "BENCH_DSN": rig.dsn})
        rig.procs.append(ref)
        time.sleep(3)
        s = rig.stream("--rate", f"{rate:g}/s", "--duration", f"{seconds:g}s")
        s.wait()
        time.sleep(5)
        w.proc.terminate()
        fin = w.final()
        ref.wait()
        bare_lags = orjson.loads(out.read_bytes())
        a = fin["lag_ms"]["all"]
        print(
            f"watch bench lag: {seconds:g} s at {rate:g} operations/s,"
            f" {fin['counts']['matched']:,} matched, verdict ok={fin['ok']}"
        )
        print(
            f"cdc watch      : p50 {a['p50']:.1f} ms  p99 {a['p99']:.1f} ms  max {a['max']:.1f} ms"
            f"  ({a['count']:,} changes)"
        )
        print(
            f"bare psycopg2  : p50 {_pct(bare_lags, 50):.1f} ms  p99 {_pct(bare_lags, 99):.1f}"
            f" ms  max {max(bare_lags):.1f} ms  ({len(bare_lags):,} commits)"
        )
        print(
            f"ratio watch / bare: p50 {a['p50'] / _pct(bare_lags, 50):.2f},"
            f" p99 {a['p99'] / _pct(bare_lags, 99):.2f}"
        )


def markers(seconds: float, rate: str) -> None:
    with Rig(2) as rig:
        w = rig.watch(rig.slots[0], "--interval", "1", "--no-progress")
        out = rig.work / "bare.json"
        argv = [PY, __file__, "_bare", rig.slots[1], rig.pub, str(seconds + 15), str(out)]
        ref = subprocess.Popen(argv, env={**rig.env, "BENCH_DSN": rig.dsn})
        rig.procs.append(ref)
        time.sleep(3)
        s = rig.stream("--rate", rate, "--markers", "0.2", "--duration", f"{seconds:g}s")
        s.wait()
        time.sleep(5)
        w.proc.terminate()
        fin = w.final()
        ref.wait()
        bare_lags = orjson.loads(Path(str(out) + ".markers").read_bytes())
        m, a = fin["markers"], fin["markers"]["lag_ms"]
        written = orjson.loads((rig.work / "stream.json").read_bytes())["markers"]
        print(
            f"watch bench markers: {seconds:g} s at {rate}, markers every 0.2 s: written"
            f" {written['written']:,} (failed {written['failed']}), watch saw {m['count']:,}"
            f" (gaps {m['gaps']}, duplicated {m['duplicated']}), verdict ok={fin['ok']}"
        )
        print(
            f"cdc watch      : p50 {a['p50']:.1f} ms  p99 {a['p99']:.1f} ms  max {a['max']:.1f} ms"
        )
        print(
            f"bare psycopg2  : p50 {_pct(bare_lags, 50):.1f} ms  p99 {_pct(bare_lags, 99):.1f}"
            f" ms  max {max(bare_lags):.1f} ms  ({len(bare_lags):,} markers)"
        )
        print(
            f"ratio watch / bare: p50 {a['p50'] / _pct(bare_lags, 50):.2f},"
            f" p99 {a['p99'] / _pct(bare_lags, 99):.2f}"
        )


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "capacity"
    rest = sys.argv[2:]
    if mode == "capacity":
        capacity(int(rest[0]) if rest else 30_000)
    elif mode == "soak":
        soak(float(rest[0]) if rest else 300.0, float(rest[1]) if len(rest) > 1 else 2000.0)
    elif mode == "lag":
        lag(float(rest[0]) if rest else 30.0, float(rest[1]) if len(rest) > 1 else 1000.0)
    elif mode == "markers":
        markers(float(rest[0]) if rest else 30.0, rest[1] if len(rest) > 1 else "1/h")
    elif mode == "_bare":
        bare(rest[0], rest[1], float(rest[2]), rest[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}: capacity, soak, lag or markers")
