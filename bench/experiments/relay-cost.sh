#!/usr/bin/env bash
# Experiment (not a test, not part of the product): where Gatehouse's CPU per
# pgbench transaction goes. Builds the current commit with
# relay-cost.patch applied (in a git worktree of its own, with its own target
# directory; the first build takes about 10 minutes), then runs pgbench -S
# side by side against PgBouncer and four Gatehouse instances of that build:
#
#   full   the product as it is (policy, recording, masking hooks)
#   nosend GH_EXP=nosend: statement records written as JSON into a buffer
#          that is reused, never sent (no chunks, no recorder, no store)
#   nolog  GH_EXP=nolog: everything but the statement records (no JSON,
#          no chunks, no store writes)
#   raw    GH_EXP=raw: the same session threads relaying bytes without
#          looking at them (no framing, policy or recording)
#
# For each it prints TPS and the process's on-CPU time per transaction, read
# from /proc/<pid>/task/*/schedstat (nanoseconds), split into the session
# threads and the rest (recorder, store). The patch is for measurement only:
# GH_EXP must never be part of a build anyone runs.
#
#   bench/experiments/relay-cost.sh [--duration S] [--rounds N] [--clients "8 32"] [--modes prepared] [--threads 1]
#                                   [--bin PATH]   (a binary built with the patch already: no build)
#
# Needs what bench/pgbench.sh needs (PostgreSQL on 127.0.0.1:5432, trust auth,
# pgbench, PgBouncer); it uses the database `bench` that bench/pgbench.sh
# initialises (pgbench -i -s 10), and creates it if missing.
set -euo pipefail

DURATION=5
ROUNDS=3
CLIENTS="8 32"
MODES="prepared"
THREADS=1
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
say() { echo "[$(date '+%H:%M:%S')] $*" >&2; }
WORK=$(mktemp -d /tmp/gatehouse-relay-cost.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  git -C "$ROOT" worktree remove --force "$WORK/src" 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- build
if [ -z "$BIN" ]; then
  say "building $(git rev-parse --short HEAD) with relay-cost.patch (target/experiments)"
  git worktree add --detach "$WORK/src" HEAD >/dev/null 2>&1
  git -C "$WORK/src" apply "$ROOT/bench/experiments/relay-cost.patch"
  (cd "$WORK/src" && cargo build --release --locked -p gatehouse --target-dir "$ROOT/target/experiments" >&2)
  BIN="$ROOT/target/experiments/release/gatehouse"
fi

# ---------------------------------------------------------------- database, PgBouncer
psql_direct() { PGSSLMODE=disable psql -X -q -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 "$@"; }
if [ "$(psql_direct -d postgres -Atc "select count(*) from pg_database where datname = 'bench'")" = 0 ]; then
  psql_direct -d postgres -c 'CREATE DATABASE bench'
  PGSSLMODE=disable pgbench -i -q -s 10 -h 127.0.0.1 -U postgres bench >/dev/null 2>&1
  psql_direct -d bench -c 'VACUUM ANALYZE'
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
PGB_PORT=$(free_port)
# shellcheck source=bench/lib/pgbouncer.sh
. "$ROOT/bench/lib/pgbouncer.sh"
write_pgbouncer_config "$WORK/pgb" "$PGB_PORT" bench 127.0.0.1 5432 postgres
PGB_ARGS=()
[ "$(id -u)" = 0 ] && PGB_ARGS=(-u postgres) && chown -R postgres "$WORK/pgb"
"$PGBOUNCER" "${PGB_ARGS[@]}" "$WORK/pgb/pgbouncer.ini" >"$WORK/pgb/stdout.log" 2>&1 &
PIDS+=($!)
declare -A PID PORT USER PASS
PID[pgbouncer]=$!; PORT[pgbouncer]=$PGB_PORT; USER[pgbouncer]=postgres; PASS[pgbouncer]=""

# ---------------------------------------------------------------- three gateways
start_gateway() { # name GH_EXP-value
  local name=$1 exp=$2 data="$WORK/$1" log="$WORK/$1.log" api="" port=""
  GH_EXP=$exp GATEHOUSE_SESSION_THREADS=$THREADS "$BIN" serve --data-dir "$data" \
    --api-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 --mysql-listen off --aws-listen off >"$log" 2>&1 &
  PIDS+=($!); PID[$name]=$!
  for _ in $(seq 600); do
    api=$(grep -o 'api=http://127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null | head -1 | cut -d= -f2 || true)
    port=$(grep -o 'postgres=127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$api" ] && [ -n "$port" ] && [ -s "$data/admin.token" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log" >&2; exit 1; }
  PORT[$name]=$port; USER[$name]=bench; PASS[$name]=$(cat "$data/admin.token")
  GATEHOUSE_URL=$api GATEHOUSE_TOKEN=${PASS[$name]} "$BIN" connections add bench --kind postgres \
    --url "postgres://postgres@127.0.0.1:5432/bench?sslmode=disable" --group admin >/dev/null
}
start_gateway full ""
start_gateway nosend nosend
start_gateway nolog nolog
start_gateway raw raw
for _ in $(seq 100); do
  PGSSLMODE=disable psql -X -h 127.0.0.1 -p "$PGB_PORT" -U postgres -d bench -Atc 'select 1' >/dev/null 2>&1 && break
  sleep 0.1
done

# ---------------------------------------------------------------- measure
# on-CPU nanoseconds of a process's session threads and of the rest
cpu_ns() {
  local pid=$1 s=0 o=0 t c
  for d in /proc/"$pid"/task/*; do
    t=$(awk '{print $1}' "$d/schedstat"); c=$(cat "$d/comm")
    case $c in *session*) s=$((s + t)) ;; *) o=$((o + t)) ;; esac
  done
  echo "$s $o"
}
echo "# $BIN (commit $(git rev-parse --short HEAD) + bench/experiments/relay-cost.patch); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr)"
echo "# pgbench -n -S -T $DURATION -j min(c,2), $ROUNDS interleaved rounds, $THREADS session thread(s); CPU in µs per transaction"
echo "round mode clients target tps cpu_session cpu_other cpu_total"
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for c in $CLIENTS; do
      for t in pgbouncer full nosend nolog raw; do
        read -r s0 o0 < <(cpu_ns "${PID[$t]}")
        out=$(PGSSLMODE=disable PGPASSWORD=${PASS[$t]} pgbench -n -S -M "$m" -c "$c" -j $((c < 2 ? c : 2)) -T "$DURATION" \
          -h 127.0.0.1 -p "${PORT[$t]}" -U "${USER[$t]}" bench 2>&1) || { echo "$out" >&2; exit 1; }
        read -r s1 o1 < <(cpu_ns "${PID[$t]}")
        n=$(awk '/actually processed/ {print $6}' <<<"$out" | cut -d/ -f1)
        tps=$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")
        awk -v r="$r" -v m="$m" -v c="$c" -v t="$t" -v tps="$tps" -v n="$n" -v s=$((s1 - s0)) -v o=$((o1 - o0)) \
          'BEGIN {printf "%s %s %s %s %s %.2f %.2f %.2f\n", r, m, c, t, tps, s/1000/n, o/1000/n, (s+o)/1000/n}'
      done
    done
  done
done | tee "$WORK/rows.txt"
echo
echo "# medians"
python3 - "$WORK/rows.txt" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 8 and f[0].isdigit():
        d[(f[1], int(f[2]), f[3])].append([float(x) for x in f[4:]])
for (m, c, t), rows in sorted(d.items()):
    med = [statistics.median(col) for col in zip(*rows)]
    pgb = statistics.median(r[0] for r in d[(m, c, 'pgbouncer')])
    print(f"{m:9} {c:3} {t:10} tps={med[0]:8.0f} x_pgbouncer={med[0] / pgb:.2f} cpu_us/txn session={med[1]:.2f} other={med[2]:.2f} total={med[3]:.2f}")
PY
