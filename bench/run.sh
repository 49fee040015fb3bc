#!/usr/bin/env bash
# bench/run.sh: rotary against Slack Bolt for JavaScript, and rotary's own
# figures, from a fresh clone with one command. Writes bench/RESULTS.md.
#
#   bash bench/run.sh            # the full run (about 15 minutes on 2 cores)
#   BENCH_QUICK=1 bash bench/run.sh   # 1 round, short runs, 100k instead of 1M: a smoke test
#
# Needs Go and Node.js with npm (the Bolt peer is installed with `npm ci`
# from bench/peer-bolt/package-lock.json). Everything listens on 127.0.0.1;
# the load generator refuses any other host. rotary runs as in production:
# the Dockerfile's build flags, fsync on every commit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/bench/RESULTS.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rotary-bench.XXXXXX")
QUICK=${BENCH_QUICK:-}
ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10s}
APPROVALS=${BENCH_APPROVALS:-4000}
SCALE=${BENCH_SCALE_REQUESTS:-1000000}
COLD=${BENCH_COLD_REQUESTS:-100000}
FIRST_STEP_N=${BENCH_FIRST_STEP_N:-300}
if [[ -n $QUICK ]]; then
  ROUNDS=1 DURATION=3s APPROVALS=1000 SCALE=100000 COLD=20000 FIRST_STEP_N=50
fi
ROTARY_PORT=${BENCH_ROTARY_PORT:-18480}
ADMIN_PORT=${BENCH_ADMIN_PORT:-18481}
BOLT_PORT=${BENCH_BOLT_PORT:-18490}
# The signing secret both servers verify with; it protects nothing.
export SLACK_SIGNING_SECRET=bench-signing-secret-0123456789abcdef

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '[bench] %s\n' "$*" >&2; }

# stop PID: end one process this script started (SIGTERM, as Kubernetes
# does) and wait for it; one still running after STOP_GRACE seconds is
# killed and reported: a clean shutdown is part of what is measured.
STOP_GRACE=${BENCH_STOP_GRACE:-35}
stop() {
  kill "$1" 2>/dev/null || true
  local waited=0
  while kill -0 "$1" 2>/dev/null && (( waited < STOP_GRACE * 10 )); do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 "$1" 2>/dev/null; then
    log "process $1 did not exit within ${STOP_GRACE}s of SIGTERM; killing it"
    fig "shutdown.hang.$1" "did not exit within ${STOP_GRACE}s of SIGTERM"
    kill -9 "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || true
  local kept=()
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

log "building rotary (as the Dockerfile does) and the load generator"
cd "$ROOT"
# CGO_ENABLED=0 as in the Dockerfile: a cgo build links libc and maps a
# larger binary, which alone adds about 30 MiB to the resident set.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$WORK/rotary" .
go build -o "$WORK/loadgen" ./bench/loadgen
LOADGEN=$WORK/loadgen
log "installing the Bolt peer (npm ci)"
npm ci --prefix "$ROOT/bench/peer-bolt" --no-audit --no-fund --loglevel=error >&2

RESULTS=$WORK/results.jsonl
FIGURES=$WORK/figures.txt
: > "$RESULTS"
: > "$FIGURES"
fig() { echo "$1 $2" >> "$FIGURES"; }

fig machine.date "$(date -u +%Y-%m-%dT%H:%MZ)"
fig machine.commit "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
fig machine.cpus "$(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
fig machine.go "$(go version | cut -d' ' -f3-)"
fig machine.node "$(node --version), @slack/bolt $(node -p "require('$ROOT/bench/peer-bolt/node_modules/@slack/bolt/package.json').version")"
fig machine.load_at_start "$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min: other work on the machine skews every figure)"
fig machine.settings "rounds $ROUNDS, $DURATION per run, $APPROVALS approvals per approval run"

# start_fakes DIR: the Slack and Secret Manager fakes rotary talks to.
start_fakes() {
  "$LOADGEN" fakes -env "$1/fakes.env" -kubeconfig "$1/kubeconfig" > "$1/fakes.log" 2>&1 &
  FAKES=$!
  PIDS+=("$FAKES")
  for _ in $(seq 500); do [[ -f $1/fakes.env ]] && return 0; sleep 0.01; done
  log "the fakes did not start:"; cat "$1/fakes.log" >&2; exit 1
}

# start_rotary DIR [STATE]: a rotary on a fresh (or the given) state file.
start_rotary() {
  local dir=$1 state=${2:-$1/rotary.db}
  start_fakes "$dir"
  "$LOADGEN" config -listen "127.0.0.1:$ROTARY_PORT" -admin "127.0.0.1:$ADMIN_PORT" -state "$state" > "$dir/rotary.yaml"
  (set -a; . "$dir/fakes.env"; set +a; ROTARY_LOG_LEVEL=warn exec "$WORK/rotary" serve --config "$dir/rotary.yaml") > "$dir/rotary.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  "$LOADGEN" ready -url "http://127.0.0.1:$ROTARY_PORT/readyz" -pid "$SERVER" -timeout 120s > "$dir/ready_ms" ||
    { log "rotary did not start:"; tail -20 "$dir/rotary.log" >&2; exit 1; }
}

start_bolt() {
  (cd "$ROOT/bench/peer-bolt" && PORT=$BOLT_PORT exec node app.js) > "$1/bolt.log" 2>&1 &
  SERVER=$!
  PIDS+=("$SERVER")
  "$LOADGEN" ready -url "http://127.0.0.1:$BOLT_PORT/healthz" -pid "$SERVER" -timeout 60s > /dev/null ||
    { log "the Bolt peer did not start:"; cat "$1/bolt.log" >&2; exit 1; }
}

stop_server() {
  stop "$SERVER"
  [[ ${FAKES:-} ]] && stop "$FAKES"
  FAKES=
}

# one SERVER SCENARIO CONNS ROUND: a run on a fresh server, its figures appended to $RESULTS.
one() {
  local server=$1 scenario=$2 c=$3 round=$4 dir port
  dir=$WORK/$server-$scenario-$c-$round
  mkdir -p "$dir"
  if [[ $server == rotary ]]; then start_rotary "$dir"; port=$ROTARY_PORT; else start_bolt "$dir"; port=$BOLT_PORT; fi
  sleep 1 # let start-up work settle before the idle memory is read
  "$LOADGEN" run -url "http://127.0.0.1:$port" -scenario "$scenario" -c "$c" -d "$DURATION" -n "$([[ $scenario == approvals ]] && echo "$APPROVALS" || echo 10000000)" \
    -label "$server" -pid "$SERVER" -json "$RESULTS" >&2
  stop_server
}

log "rotary vs Bolt: $ROUNDS rounds, alternating"
for round in $(seq "$ROUNDS"); do
  for scenario in commands approvals; do
    for c in 16 64; do
      one rotary "$scenario" "$c" "$round"
      one bolt "$scenario" "$c" "$round"
    done
  done
done

log "approval → first step, in process (go test, fsync on)"
line=$(cd "$ROOT" && ROTARY_FIRST_STEP_N=$FIRST_STEP_N go test -count=1 -run '^TestApprovalToFirstStep$' -v . | grep -o 'FIGURE approval_to_first_step.*')
fig first_step.n "$(sed -E 's/.* n=([0-9]+).*/\1/' <<< "$line")"
fig first_step.p50_ms "$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<< "$line")"
fig first_step.p99_ms "$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<< "$line")"

log "cold start with $COLD stored requests"
dir=$WORK/cold && mkdir -p "$dir"
"$LOADGEN" seed -state "$dir/cold.db" -requests "$COLD" >&2
cold=() empty=()
for i in 1 2 3; do
  start_rotary "$dir" "$dir/cold.db"; cold+=("$(cat "$dir/ready_ms")"); stop_server; rm -f "$dir/fakes.env"
  start_rotary "$dir" "$dir/empty$i.db"; empty+=("$(cat "$dir/ready_ms")"); stop_server; rm -f "$dir/fakes.env"
done
fig cold_start_100k.requests "$COLD"
fig cold_start_100k.ms "$(printf '%s\n' "${cold[@]}" | sort -n | sed -n 2p)"
fig cold_start_empty.ms "$(printf '%s\n' "${empty[@]}" | sort -n | sed -n 2p)"

log "list and status with $SCALE stored requests"
dir=$WORK/scale && mkdir -p "$dir"
"$LOADGEN" seed -state "$dir/scale.db" -requests "$SCALE" -open 20 -ids "$dir/ids.txt" >&2
start_rotary "$dir" "$dir/scale.db"
"$LOADGEN" run -url "http://127.0.0.1:$ROTARY_PORT" -scenario list -c 1 -n 500 -d 60s -label list-1m -json "$RESULTS" >&2
"$LOADGEN" run -url "http://127.0.0.1:$ROTARY_PORT" -scenario status -c 1 -n 1000 -d 60s -ids "$dir/ids.txt" -label status-1m -json "$RESULTS" >&2
stop_server
fig scale.requests "$SCALE"

log "Go micro-benchmarks"
(cd "$ROOT" && go test -run='^$' -bench=. -benchtime=2000x ./commands ./bot ./bot/blocks ./approvals/boltstore) > "$WORK/gobench.txt"
fig machine.load_at_end "$(cut -d' ' -f1-3 /proc/loadavg)"

"$LOADGEN" report -results "$RESULTS" -figures "$FIGURES" -gobench "$WORK/gobench.txt" -notes "$ROOT/bench/ANALYSIS.md" > "$OUT"
# The raw figures, beside the report, so it can be rendered again
# (`loadgen report`) after bench/ANALYSIS.md changes.
RAW=$(dirname "$OUT")/results
mkdir -p "$RAW"
cp "$RESULTS" "$FIGURES" "$WORK/gobench.txt" "$RAW/"
log "wrote $OUT and the raw figures in $RAW"
