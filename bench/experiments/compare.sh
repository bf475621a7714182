#!/usr/bin/env bash
# Experiment (not a test): pgbench -S through PgBouncer and through several
# Gatehouse instances side by side, in interleaved rounds, to compare builds
# or settings on one machine in one run. Each instance is
#
#   NAME=BINARY[,VAR=VALUE...]   e.g.  before=/tmp/gh-old  after=target/release/gatehouse,GATEHOUSE_SESSION_THREADS=1
#
# (the variables are set in that instance's environment). For each run it
# prints TPS and the process's on-CPU time per transaction, read from
# /proc/<pid>/task/*/schedstat (nanoseconds), split into the session threads
# and the rest (recorder, store), and the whole machine's idle time and
# context switches per transaction (/proc/stat); then the medians, with TPS
# as a ratio to PgBouncer's.
#
#   bench/experiments/compare.sh [--duration S] [--rounds N] [--clients "8 32"] [--modes prepared]
#                                [--threads 1] [--title TEXT] [--policy FILE] INSTANCE...
#
# --policy FILE puts the policy in FILE (JSON, as `PUT /v1/policy` takes it)
# in force in every Gatehouse instance before measuring; pgbench's sessions
# run as the admin group (masks for `admin` apply to them).
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
TITLE=""
POLICY=""
INSTANCES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --title) TITLE=$2; shift 2 ;;
    --policy) POLICY=$2; shift 2 ;;
    -*) echo "unknown argument: $1" >&2; exit 2 ;;
    *=*) INSTANCES+=("$1"); shift ;;
    *) echo "an instance is NAME=BINARY[,VAR=VALUE...], not: $1" >&2; exit 2 ;;
  esac
done
[ ${#INSTANCES[@]} -gt 0 ] || { echo "name at least one instance: NAME=BINARY[,VAR=VALUE...]" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib/experiment.sh
. "$ROOT/bench/lib/experiment.sh"
experiment_workdir compare

# ---------------------------------------------------------------- database, PgBouncer
ensure_bench_db
start_pgbouncer
declare -A PID PORT USER PASS
PID[pgbouncer]=$PGB_PID; PORT[pgbouncer]=$PGB_PORT; USER[pgbouncer]=postgres; PASS[pgbouncer]=""
TARGETS=(pgbouncer)

# ---------------------------------------------------------------- gateways
# shellcheck source=bench/lib/gatehouse.sh
. "$ROOT/bench/lib/gatehouse.sh"
start_gateway() { # NAME=BINARY[,VAR=VALUE...]
  local name=${1%%=*} spec=${1#*=} bin env=()
  IFS=, read -r -a parts <<<"$spec"
  bin=${parts[0]}
  env=("${parts[@]:1}")
  [ -x "$bin" ] || { echo "$name: $bin is not an executable" >&2; exit 2; }
  start_gatehouse "$bin" "$WORK/$name" "$WORK/$name.log" GATEHOUSE_SESSION_THREADS="$THREADS" "${env[@]}"
  if [ -n "$POLICY" ]; then
    curl -sf -X PUT -H "Authorization: Bearer $GH_TOKEN" -H 'Content-Type: application/json' \
      --data-binary @"$POLICY" "$GH_API/v1/policy" >/dev/null ||
      { echo "$name: the policy in $POLICY was not accepted" >&2; exit 2; }
  fi
  PID[$name]=$GH_PID; PORT[$name]=$GH_PORT; USER[$name]=bench; PASS[$name]=$GH_TOKEN
  TARGETS+=("$name")
  echo "# $name: $bin ($(md5sum "$bin" | cut -c1-12))${env[*]:+ with ${env[*]}}"
}
[ -n "$TITLE" ] && echo "# $TITLE"
[ -n "$POLICY" ] && echo "# policy: $(tr -d '\n' <"$POLICY")"
for inst in "${INSTANCES[@]}"; do start_gateway "$inst"; done

# ---------------------------------------------------------------- measure
# on-CPU nanoseconds of a process's session threads and of the rest, and
# the process's minor page faults
cpu_ns() {
  local pid=$1 s=0 o=0 t c
  for d in /proc/"$pid"/task/*; do
    t=$(awk '{print $1}' "$d/schedstat"); c=$(cat "$d/comm")
    case $c in *session*) s=$((s + t)) ;; *) o=$((o + t)) ;; esac
  done
  # field 10 of stat, counted after the command name (which may hold spaces)
  echo "$s $o $(sed 's/.*) //' /proc/"$pid"/stat | awk '{print $8}')"
}
# the whole machine's idle time and context switches per transaction
# shellcheck source=bench/lib/machine.sh
. "$ROOT/bench/lib/machine.sh"
echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr); started $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# pgbench -n -S -T $DURATION -j min(c,2), $ROUNDS interleaved rounds (each starting with a different target), $THREADS session thread(s); CPU in µs per transaction"
echo "round mode clients target tps cpu_session cpu_other cpu_total faults_per_1k_txn idle_us switches"
n_targets=${#TARGETS[@]}
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for c in $CLIENTS; do
      for k in $(seq 0 $((n_targets - 1))); do
        t=${TARGETS[$(((k + r - 1) % n_targets))]}
        read -r s0 o0 f0 < <(cpu_ns "${PID[$t]}")
        m0=$(machine_counters)
        out=$(PGSSLMODE=disable PGPASSWORD=${PASS[$t]} pgbench -n -S -M "$m" -c "$c" -j $((c < 2 ? c : 2)) -T "$DURATION" \
          -h 127.0.0.1 -p "${PORT[$t]}" -U "${USER[$t]}" bench 2>&1) || { echo "$out" >&2; exit 1; }
        read -r s1 o1 f1 < <(cpu_ns "${PID[$t]}")
        m1=$(machine_counters)
        n=$(awk '/actually processed/ {print $6}' <<<"$out" | cut -d/ -f1)
        tps=$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")
        awk -v r="$r" -v m="$m" -v c="$c" -v t="$t" -v tps="$tps" -v n="$n" -v s=$((s1 - s0)) -v o=$((o1 - o0)) -v f=$((f1 - f0)) \
          -v w="$(machine_per_txn "$m0" "$m1" "$n")" \
          'BEGIN {printf "%s %s %s %s %s %.2f %.2f %.2f %.2f %s\n", r, m, c, t, tps, s/1000/n, o/1000/n, (s+o)/1000/n, f*1000/n, w}'
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
    if len(f) == 11 and f[0].isdigit():
        d[(f[1], int(f[2]), f[3])].append([float(x) for x in f[4:]])
for (m, c, t), rows in sorted(d.items(), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])):
    med = [statistics.median(col) for col in zip(*rows)]
    pgb = statistics.median(r[0] for r in d[(m, c, 'pgbouncer')])
    print(f"{m:9} {c:3} {t:10} tps={med[0]:8.0f} x_pgbouncer={med[0] / pgb:.2f} cpu_us/txn session={med[1]:.2f} other={med[2]:.2f} total={med[3]:.2f} faults/1k={med[4]:.2f} idle_us/txn={med[5]:.2f} switches/txn={med[6]:.2f}")
PY
