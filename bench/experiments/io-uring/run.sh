#!/usr/bin/env bash
# Experiment (not a test, not part of the product): what the I/O runtime
# costs a proxy per pgbench transaction. Runs pgbench -S side by side, in
# interleaved rounds, against PgBouncer (session mode), byte-for-byte relays
# with no parsing (relay.c: epoll, and io_uring with DEFER_TASKRUN; rust/:
# tokio with two tasks per client or one, monoio on io_uring with and without
# DEFER_TASKRUN, and monoio behind the adapters Gatehouse's relay would need,
# rust/src/adapted.rs) and, if given,
# a Gatehouse binary (one session thread unless --gatehouse-threads says
# otherwise, recording on). The Rust relays run on one thread unless
# --relay-threads says otherwise (then an acceptor thread deals the clients
# out in turn); the C relays always on one. Prints each one's TPS against PgBouncer's, its
# on-CPU time per transaction (/proc/<pid>/task/*/schedstat), and the whole
# machine's idle time and context switches per transaction (/proc/stat).
#
#   bench/experiments/io-uring/run.sh [--rounds N] [--duration S] [--clients "8 32"]
#                                     [--modes prepared] [--gatehouse PATH] [--gatehouse-threads N]
#                                     [--relay-threads N]
#                                     [--only "rs-tokio rs-monoio-adapted ..."]
#
# --only measures PgBouncer and the named targets (c-epoll, c-uring-defer, rs-tokio,
# rs-tokio-one, rs-monoio, rs-monoio-defer, rs-monoio-adapted; gatehouse with --gatehouse).
#
# Needs liburing-dev (apt-get install liburing-dev), gcc, cargo (crates from
# crates.io: monoio, io-uring), PgBouncer, and what bench/pgbench.sh needs
# (PostgreSQL on 127.0.0.1:5432 with trust auth, pgbench, database `bench`).
set -euo pipefail

ROUNDS=4
DURATION=5
CLIENTS="8 32"
MODES="prepared"
GATEHOUSE=""
GH_THREADS=1
RELAY_THREADS=1
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --gatehouse) GATEHOUSE=$2; shift 2 ;;
    --gatehouse-threads) GH_THREADS=$2; shift 2 ;;
    --relay-threads) RELAY_THREADS=$2; shift 2 ;;
    --only) ONLY=" $2 "; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
# shellcheck source=bench/lib/experiment.sh
. "$ROOT/bench/lib/experiment.sh"
experiment_workdir io-uring
export PGSSLMODE=disable

gcc -O2 -Wall -o "$WORK/relay" "$HERE/relay.c" -luring
cargo build --release --quiet --manifest-path "$HERE/rust/Cargo.toml" --target-dir "$WORK/target"
RUST="$WORK/target/release/relay-experiment"

ensure_bench_db

declare -A PID PORT USER PASS
TARGETS=()
# whether a target is measured (all of them unless --only names some)
want() { [ -z "$ONLY" ] || [[ $ONLY == *" $1 "* ]]; }
add() { PID[$1]=$2; PORT[$1]=$3; USER[$1]=$4; PASS[$1]=$5; PIDS+=("$2"); TARGETS+=("$1"); }

start_pgbouncer
add pgbouncer "$PGB_PID" "$PGB_PORT" postgres ""
for m in epoll uring-defer; do
  want "c-$m" || continue
  port=$(free_port); "$WORK/relay" "$m" "$port" 2>"$WORK/$m.log" & add "c-$m" $! "$port" postgres ""
done
for m in tokio tokio-one monoio monoio-defer monoio-adapted; do
  want "rs-$m" || continue
  port=$(free_port); RELAY_THREADS=$RELAY_THREADS "$RUST" "$m" "$port" 2>"$WORK/$m.log" & add "rs-$m" $! "$port" postgres ""
done
if [ -n "$GATEHOUSE" ]; then
  # shellcheck source=bench/lib/gatehouse.sh
  . "$ROOT/bench/lib/gatehouse.sh"
  start_gatehouse "$GATEHOUSE" "$WORK/gh" "$WORK/gh.log" GATEHOUSE_SESSION_THREADS="$GH_THREADS"
  add gatehouse "$GH_PID" "$GH_PORT" bench "$GH_TOKEN"
fi
for t in "${TARGETS[@]}"; do
  for _ in $(seq 100); do
    PGPASSWORD=${PASS[$t]} psql -X -h 127.0.0.1 -p "${PORT[$t]}" -U "${USER[$t]}" -d bench -Atc 'select 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# shellcheck source=bench/lib/machine.sh
. "$ROOT/bench/lib/machine.sh"
cpu_ns() { local s=0; for d in /proc/"$1"/task/*; do s=$((s + $(awk '{print $1}' "$d/schedstat"))); done; echo "$s"; }
echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr); started $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# pgbench -n -S -T $DURATION -j min(c,2), $ROUNDS interleaved rounds; Rust relays on $RELAY_THREADS thread(s), Gatehouse on $GH_THREADS session thread(s); CPU in µs per transaction"
n_targets=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for c in $CLIENTS; do
      for k in $(seq 0 $((n_targets - 1))); do
        t=${TARGETS[$(((k + r - 1) % n_targets))]}
        a=$(cpu_ns "${PID[$t]}"); m0=$(machine_counters)
        out=$(PGPASSWORD=${PASS[$t]} pgbench -n -S -M "$m" -c "$c" -j $((c < 2 ? c : 2)) -T "$DURATION" \
          -h 127.0.0.1 -p "${PORT[$t]}" -U "${USER[$t]}" bench 2>&1) || { echo "$t: $out" >&2; exit 1; }
        b=$(cpu_ns "${PID[$t]}"); m1=$(machine_counters)
        n=$(awk '/actually processed/ {print $6}' <<<"$out" | cut -d/ -f1)
        tps=$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")
        awk -v r="$r" -v m="$m" -v c="$c" -v t="$t" -v tps="$tps" -v n="$n" -v d=$((b - a)) -v w="$(machine_per_txn "$m0" "$m1" "$n")" \
          'BEGIN {printf "%s %s %s %s %s %.2f %s\n", r, m, c, t, tps, d/1000/n, w}'
      done
    done
  done
done | tee "$WORK/rows.txt"
echo
echo "# medians"
python3 - "$WORK/rows.txt" "${TARGETS[@]}" <<'PY'
import sys, statistics, collections
order = {t: i for i, t in enumerate(sys.argv[2:])}
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) == 8 and f[0].isdigit():
        d[(f[1], int(f[2]), f[3])].append([float(x) for x in f[4:]])
for (m, c, t), rows in sorted(d.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
    tps, cpu, idle, switches = (statistics.median(col) for col in zip(*rows))
    pgb = statistics.median(r[0] for r in d[(m, c, 'pgbouncer')])
    print(f"{m:9} {c:3} {t:16} tps={tps:8.0f} x_pgbouncer={tps / pgb:.2f} cpu_us/txn={cpu:.2f} idle_us/txn={idle:.2f} switches/txn={switches:.2f}")
PY
