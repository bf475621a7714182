#!/usr/bin/env bash
# Experiment (not a test): how long each proxy holds a message on the
# critical path at one client. With one pgbench client every transaction
# crosses the proxy twice (request, response), and pgbench waits for each;
# so the time between the system call that read a message and the one that
# wrote it on adds to every transaction's latency.
#
#   bench/experiments/hop.sh [--rounds N] [--duration S] [--modes "prepared simple"] [GATEHOUSE_BINARY]
#
# For each round and mode it runs `pgbench -S -c 1` through PgBouncer and
# through Gatehouse (one after the other), records the proxy's system calls
# for S seconds of it with perf's raw_syscalls tracepoints, and prints, per
# socket it read from, how many reads were followed by a write and the mean
# and median microseconds from the end of the read to the start of the write
# (the proxy's own work on the message), and the mean time inside the
# writes. Tracing slows both proxies alike; the figures compare them, they
# are not their speeds untraced.
#
# Needs perf (Debian's linux-perf) with tracefs mounted (the script mounts it
# if it can), PgBouncer, pgbench and PostgreSQL on 127.0.0.1:5432 (the
# database `bench` is made if missing).
set -euo pipefail

ROUNDS=2
DURATION=3
MODES="prepared simple"
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    -*) echo "unknown argument: $1" >&2; exit 2 ;;
    *) BIN=$1; shift ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BIN=${BIN:-target/release/gatehouse}
[ -x "$BIN" ] || { echo "$BIN is not an executable (cargo build --release --locked -p gatehouse)" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 2; }
[ -e /sys/kernel/tracing/events/raw_syscalls ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
[ -e /sys/kernel/tracing/events/raw_syscalls ] || { echo "the raw_syscalls tracepoints are not available" >&2; exit 2; }

# shellcheck source=bench/lib/experiment.sh
. "$ROOT/bench/lib/experiment.sh"
experiment_workdir hop
ensure_bench_db
start_pgbouncer
# shellcheck source=bench/lib/gatehouse.sh
. "$ROOT/bench/lib/gatehouse.sh"
start_gatehouse "$BIN" "$WORK/gh" "$WORK/gh.log"

echo "# $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -sr); $BIN ($(md5sum "$BIN" | cut -c1-12)); started $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# pgbench -n -S -c 1, the proxy's system calls traced for $DURATION s of each run; µs"
for r in $(seq "$ROUNDS"); do
  for m in $MODES; do
    for t in pgbouncer gatehouse; do
      if [ "$t" = pgbouncer ]; then port=$PGB_PORT user=postgres pass="" pid=$PGB_PID
      else port=$GH_PORT user=bench pass=$GH_TOKEN pid=$GH_PID; fi
      PGSSLMODE=disable PGPASSWORD=$pass pgbench -n -S -M "$m" -c 1 -j 1 -T $((DURATION + 3)) \
        -h 127.0.0.1 -p "$port" -U "$user" bench >"$WORK/pgbench.txt" 2>&1 &
      bench=$!
      sleep 1.5
      perf record -q -o "$WORK/trace.data" -e raw_syscalls:sys_enter,raw_syscalls:sys_exit \
        -p "$pid" -- sleep "$DURATION" 2>/dev/null
      wait "$bench"
      tps=$(awk '/^tps = / {printf "%.0f", $3}' "$WORK/pgbench.txt")
      perf script --ns -i "$WORK/trace.data" -F tid,time,event,trace 2>/dev/null >"$WORK/trace.txt"
      python3 - "$WORK/trace.txt" "$r" "$m" "$t" "$tps" <<'PY'
import collections, re, statistics, sys
path, r, m, t, tps = sys.argv[1:]
READS, WRITES = {0, 45}, {1, 44}  # read, recvfrom; write, sendto (x86_64)
last_fd, last_read, entered = {}, {}, {}
gaps, inside = collections.defaultdict(list), []
for line in open(path):
    g = re.match(r'\s*(\d+)\s+([\d.]+):\s+raw_syscalls:(sys_enter|sys_exit):\s+NR (\d+) (.*)', line)
    if not g:
        continue
    tid, at, kind, nr, rest = int(g[1]), float(g[2]) * 1e6, g[3], int(g[4]), g[5]
    if kind == 'sys_enter':
        entered[tid] = (nr, at)
        if nr in READS:
            last_fd[tid] = rest.split('(')[1].split(',')[0]
        elif nr in WRITES and tid in last_read:
            fd, done = last_read.pop(tid)
            gaps[fd].append(at - done)
    else:
        if nr in READS and not rest.strip().startswith('= -'):
            last_read[tid] = (last_fd.get(tid), at)
        if nr in WRITES and entered.get(tid, (None,))[0] == nr:
            inside.append(at - entered[tid][1])
busiest = sorted(gaps.items(), key=lambda kv: -len(kv[1]))[:2]
parts = [f"fd {fd}: n={len(v)} mean={statistics.mean(v):.2f} median={statistics.median(v):.2f}" for fd, v in busiest]
write = f"in write: mean={statistics.mean(inside):.2f}" if inside else ""
print(f"{r} {m:8} {t:9} tps={tps:>6}  read->write " + "; ".join(parts) + f"  {write}")
PY
    done
  done
done
