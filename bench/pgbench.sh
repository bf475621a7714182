#!/usr/bin/env bash
# Benchmark (not a test): pgbench select-only throughput of PostgreSQL
# directly, through PgBouncer (session mode) and through Gatehouse's
# PostgreSQL proxy (policy engine and recording on, the default), side by
# side; then Gatehouse's memory at start, after the load and with idle
# sessions held open.
#
#   bench/pgbench.sh [--duration SECONDS] [--repeat ROUNDS] [--clients "1 8 32"] [--modes "simple prepared"]
#                    [--idle SESSIONS] [--scale N] [--warmup SECONDS] [--skip-build]
#
# Needs: PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres,
# pgbench/psql, python3. Installs PgBouncer (Debian package) and psycopg
# (pip) if missing. Uses free ports only and cleans up everything it starts.
# GATEHOUSE_BIN=PATH runs another gatehouse binary (with --skip-build).
# Every hop is plaintext (sslmode=disable), so no proxy pays for TLS the
# others do not.
set -euo pipefail

DURATION=8
REPEAT=6
CLIENTS="1 8 32"
MODES="simple prepared"
IDLE=500
SCALE=10
WARMUP=3
BUILD=1
PG_HOST=127.0.0.1
PG_PORT=5432
PG_USER=postgres
DB=bench
# Connections left free for everyone else on the shared server during the
# idle-session measurement.
PG_MARGIN=15

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

repro="cd $ROOT && bench/pgbench.sh --duration $DURATION --repeat $REPEAT --clients '$CLIENTS' --modes '$MODES' --idle $IDLE --scale $SCALE --warmup $WARMUP"
[ "$BUILD" = 1 ] || repro="$repro --skip-build"
echo "# reproduce: $repro"
echo "# started:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# commit:    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree has uncommitted changes)')"
echo "# machine:   $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo

say() { echo "[$(date '+%H:%M:%S')] $*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d /tmp/gatehouse-pgbench.XXXXXX)
chmod 755 "$WORK"
GH_PID=""
PGB_PID=""
IDLE_PID=""
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
IDLE_PG_DIR=""
cleanup() {
  local rc=$?
  stop_pid "$IDLE_PID"
  stop_pid "$PGB_PID"
  stop_pid "$GH_PID"
  if [ -n "$IDLE_PG_DIR" ]; then as_postgres "$PG_BIN/pg_ctl" -D "$IDLE_PG_DIR" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# "VmRSS VmHWM" in KiB
mem_of() { awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
# utime+stime of a process (all threads), in clock ticks
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
# CPU time of every process, to name other work that competed for the CPUs
# during the measurements (the machine may be shared).
cpu_snapshot() {
  python3 - <<'PY'
import os
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        raw = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm = raw[raw.index("(") + 1 : raw.rindex(")")].replace(" ", "_")
    f = raw[raw.rindex(")") + 2 :].split()
    print(pid, comm, int(f[11]) + int(f[12]))
PY
}

# ---------------------------------------------------------------- 1. prerequisites
command -v pgbench >/dev/null || die "pgbench is not installed (Debian: postgresql-client)"
command -v psql >/dev/null || die "psql is not installed"
psql_direct() { PGSSLMODE=disable psql -X -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -v ON_ERROR_STOP=1 "$@"; }
psql_direct -d postgres -Atc 'select 1' >/dev/null || die "cannot reach PostgreSQL at $PG_HOST:$PG_PORT as $PG_USER"

if [ "$BUILD" = 1 ]; then
  say "building the release binary (cargo build --release -p gatehouse)"
  cargo build --release -p gatehouse >&2
fi
GH_BIN="${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}"
[ -x "$GH_BIN" ] || die "$GH_BIN is missing (run without --skip-build)"

if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
  say "installing PgBouncer from Debian"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  before=$(pgrep -x pgbouncer || true)
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >&2; then
    $SUDO apt-get update >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y pgbouncer >&2
  fi
  # The package may start its own service; stop only a daemon that the
  # installation just started.
  for pid in $(pgrep -x pgbouncer || true); do
    case " $before " in *" $pid "*) ;; *) say "stopping pgbouncer $pid started by the package"; kill "$pid" || true ;; esac
  done
fi
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

if ! python3 -c 'import psycopg' 2>/dev/null; then
  say "installing psycopg (pip)"
  python3 -m pip install --quiet --disable-pip-version-check 'psycopg[binary]' >&2
fi

PG_VERSION=$(psql_direct -d postgres -Atc 'show server_version')
MAX_CONN=$(psql_direct -d postgres -Atc 'show max_connections')
RESERVED=$(psql_direct -d postgres -Atc 'show superuser_reserved_connections')
echo "# postgres:  $PG_VERSION at $PG_HOST:$PG_PORT (max_connections=$MAX_CONN), $($PGBOUNCER --version | head -1), $(pgbench --version)"
echo "# gatehouse: $GH_BIN ($("$GH_BIN" --version 2>/dev/null || echo 'version ?'))"
echo "# runs:      pgbench -n -S -T $DURATION, $REPEAT interleaved rounds (medians reported), clients {$CLIENTS}, -j min(clients,2), modes {$MODES}, sslmode=disable on every hop"
echo

if [ "$(psql_direct -d postgres -Atc "select count(*) from pg_database where datname = '$DB'")" = 0 ]; then
  say "creating database $DB"
  psql_direct -d postgres -c "CREATE DATABASE $DB"
fi
say "initialising $DB (pgbench -i -s $SCALE)"
PGSSLMODE=disable pgbench -i -q -s "$SCALE" -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$DB" >"$WORK/init.log" 2>&1 ||
  { cat "$WORK/init.log" >&2; die "pgbench -i failed"; }
psql_direct -d "$DB" -c 'VACUUM ANALYZE'

# ---------------------------------------------------------------- 2. PgBouncer and Gatehouse
PGB_PORT=$(free_port)
# shellcheck source=bench/lib/pgbouncer.sh
. "$ROOT/bench/lib/pgbouncer.sh"
write_pgbouncer_config "$WORK/pgbouncer" "$PGB_PORT" "$DB" "$PG_HOST" "$PG_PORT" "$PG_USER"
PGB_ARGS=()
# PgBouncer refuses to run as root; -u drops to the postgres user.
[ "$(id -u)" = 0 ] && PGB_ARGS=(-u postgres) && chown -R postgres "$WORK/pgbouncer"
"$PGBOUNCER" "${PGB_ARGS[@]}" "$WORK/pgbouncer/pgbouncer.ini" >"$WORK/pgbouncer/stdout.log" 2>&1 &
PGB_PID=$!
for _ in $(seq 100); do
  PGSSLMODE=disable psql -X -h 127.0.0.1 -p "$PGB_PORT" -U "$PG_USER" -d "$DB" -Atc 'select 1' >/dev/null 2>&1 && break
  kill -0 "$PGB_PID" 2>/dev/null || { cat "$WORK/pgbouncer/"*.log >&2; die "PgBouncer exited"; }
  sleep 0.1
done
say "PgBouncer $PGB_PID on 127.0.0.1:$PGB_PORT (session mode)"

GH_DATA="$WORK/gatehouse-data"
"$GH_BIN" serve --data-dir "$GH_DATA" --api-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 \
  >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
GH_API="" GH_PG=""
for _ in $(seq 600); do
  GH_API=$(grep -o 'api=http://127\.0\.0\.1:[0-9]*' "$WORK/gatehouse.log" 2>/dev/null | head -1 | cut -d= -f2 || true)
  GH_PG=$(grep -o 'postgres=127\.0\.0\.1:[0-9]*' "$WORK/gatehouse.log" 2>/dev/null | head -1 | cut -d: -f2 || true)
  [ -n "$GH_API" ] && [ -n "$GH_PG" ] && break
  kill -0 "$GH_PID" 2>/dev/null || { cat "$WORK/gatehouse.log" >&2; die "Gatehouse exited"; }
  sleep 0.1
done
[ -n "$GH_PG" ] || { cat "$WORK/gatehouse.log" >&2; die "Gatehouse did not report its listeners"; }
for _ in $(seq 100); do [ -s "$GH_DATA/admin.token" ] && break; sleep 0.1; done
TOKEN=$(cat "$GH_DATA/admin.token")
GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN "$GH_BIN" connections add "$DB" --kind postgres \
  --url "postgres://$PG_USER@$PG_HOST:$PG_PORT/$DB?sslmode=disable" --group admin >&2
GH_CONNINFO="host=127.0.0.1 port=$GH_PG dbname=$DB user=bench password=$TOKEN sslmode=disable"
psql -X -d "$GH_CONNINFO" -Atc 'select count(*) from pgbench_branches' >/dev/null ||
  { cat "$WORK/gatehouse.log" >&2; die "cannot query through Gatehouse"; }
say "Gatehouse $GH_PID: $GH_API, postgres on 127.0.0.1:$GH_PG"
sleep 1
read -r MEM_START_RSS MEM_START_HWM < <(mem_of "$GH_PID")

# ---------------------------------------------------------------- 4a. idle sessions on a fresh gateway
# Every Gatehouse session opens its own upstream session, and the machine's
# PostgreSQL allows far fewer than $IDLE connections. The idle sessions go
# to a PostgreSQL cluster of the benchmark's own (initdb in the work
# directory, a free port, max_connections sized for them); if that cannot
# start, they go to the shared server, as many as it has room for.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
IDLE_CONNINFO=$GH_CONNINFO
IDLE_ON="the shared PostgreSQL server"
start_idle_pg() {
  [ -x "$PG_BIN/initdb" ] || return 1
  local dir="$WORK/idle-pg" port
  mkdir -p "$dir" && chmod 700 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_postgres "$PG_BIN/initdb" -D "$dir" -A trust -U "$PG_USER" >"$WORK/idle-initdb.log" 2>&1 || return 1
  port=$(free_port)
  as_postgres "$PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=$((IDLE + 10)) -c shared_buffers=32MB -c fsync=off" \
    start >"$WORK/idle-pgctl.log" 2>&1 || return 1
  IDLE_PG_DIR=$dir
  GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN "$GH_BIN" connections add idle --kind postgres \
    --url "postgres://$PG_USER@127.0.0.1:$port/postgres?sslmode=disable" --group admin >/dev/null || return 1
  IDLE_CONNINFO="host=127.0.0.1 port=$GH_PG dbname=idle user=bench password=$TOKEN sslmode=disable"
  IDLE_ON="a PostgreSQL cluster of the benchmark's own (max_connections=$((IDLE + 10)), port $port)"
  say "idle sessions go to $IDLE_ON"
}
start_idle_pg || say "could not start a PostgreSQL cluster for the idle sessions (see $WORK/idle-*.log); using the shared server"
idle_budget() {
  if [ -n "$IDLE_PG_DIR" ]; then echo "$IDLE"; return; fi
  local used
  used=$(psql_direct -d postgres -Atc "select count(*) from pg_stat_activity where backend_type = 'client backend'")
  local avail=$((MAX_CONN - RESERVED - used - PG_MARGIN))
  [ "$avail" -lt "$IDLE" ] && echo "$avail" || echo "$IDLE"
}
run_idle() { # label
  local n
  n=$(idle_budget)
  if [ "$n" -lt 2 ]; then
    say "no room on PostgreSQL for idle sessions"; echo "sessions=0" >"$WORK/idle-$1.out"; return
  fi
  say "holding $n idle sessions through Gatehouse ($1)"
  python3 "$ROOT/bench/idle_sessions.py" --pid "$GH_PID" --sessions "$n" --conninfo "$IDLE_CONNINFO" \
    >"$WORK/idle-$1.out" 2>"$WORK/idle-$1.err" &
  IDLE_PID=$!
  wait "$IDLE_PID" || say "idle sessions: $(cat "$WORK/idle-$1.err")"
  IDLE_PID=""
  sleep 1
}
run_idle fresh

# ---------------------------------------------------------------- 3. throughput
# target → host port user password
target_args() {
  case "$1" in
    direct) echo "$PG_PORT $PG_USER" ;;
    pgbouncer) echo "$PGB_PORT $PG_USER" ;;
    gatehouse) echo "$GH_PG bench" ;;
  esac
}
proxy_pid() { case "$1" in pgbouncer) echo "$PGB_PID" ;; gatehouse) echo "$GH_PID" ;; *) echo "" ;; esac; }

declare -A TPS LAT CPU CPUUS LOAD NOTE
GH_TXNS=0
run_pgbench() { # target mode clients seconds [tag] [round]
  local target=$1 mode=$2 c=$3 secs=$4 tag=${5:-} round=${6:-1}
  local port user pid j log t0 t1
  read -r port user < <(target_args "$target")
  pid=$(proxy_pid "$target")
  j=$((c < 2 ? c : 2))
  log="$WORK/pgbench-$target-$mode-$c$tag.log"
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  local rc=0 w0 w1
  w0=$(date +%s.%N)
  PGSSLMODE=disable PGPASSWORD=$TOKEN pgbench -n -S -M "$mode" -c "$c" -j "$j" -T "$secs" \
    -h 127.0.0.1 -p "$port" -U "$user" "$DB" >"$log" 2>&1 || rc=$?
  w1=$(date +%s.%N)
  [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
  [ -n "$tag" ] && return 0
  local key="$mode/$c/$target#$round"
  local tps
  tps=$(awk '/^tps = / {print $3; exit}' "$log")
  if [ "$rc" != 0 ] || [ -z "$tps" ]; then
    # pgbench stops a client at its first error; report that, not a number.
    TPS[$key]="aborted"
    NOTE[$key]="$target, $mode, $c clients: pgbench exited $rc after $(awk -v a="$w0" -v b="$w1" 'BEGIN {printf "%.1f", b - a}') s of $secs s ($(awk '/^number of transactions actually processed:/ {print $6; exit}' "$log") transactions); first error: $(grep -m1 -iE 'error|fatal' "$log" | sed 's/^pgbench: error: //')"
    say "pgbench against $target ($mode, $c clients) failed: ${NOTE[$key]}"
  else
    TPS[$key]=$tps
  fi
  LAT[$key]=$(awk '/^latency average = / {print $4; exit}' "$log")
  local done_txns
  done_txns=$(awk '/^number of transactions actually processed:/ {print $6; exit}' "$log" | cut -d/ -f1)
  if [ -n "$pid" ]; then
    CPU[$key]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN {printf "%.0f", 100 * d / hz / (b - a)}')
    CPUUS[$key]=$(awk -v d=$((t1 - t0)) -v hz="$CLK_TCK" -v n="${done_txns:-0}" 'BEGIN { if (n > 0) printf "%.1f", 1e6 * d / hz / n; else printf "-" }')
  else
    CPU[$key]="-"
    CPUUS[$key]="-"
  fi
  LOAD[$key]=$(cut -d' ' -f1 /proc/loadavg)
  if [ "$target" = gatehouse ]; then
    GH_TXNS=$((GH_TXNS + ${done_txns:-0}))
  fi
  say "  $mode c=$c $target: tps=${TPS[$key]} lat=${LAT[$key]}ms proxy_cpu=${CPU[$key]}% load=${LOAD[$key]}"
}

if [ "$WARMUP" -gt 0 ]; then
  say "warming up ($WARMUP s per target)"
  for t in direct pgbouncer gatehouse; do run_pgbench "$t" simple 8 "$WARMUP" -warmup; done
fi
say "measuring: $DURATION s per run"
cpu_snapshot >"$WORK/cpu0"
MEASURE_T0=$(date +%s)
TARGETS=(direct pgbouncer gatehouse)
for mode in $MODES; do
  for c in $CLIENTS; do
    # Rounds interleave the targets, each round starting with a different
    # one, so drift on the shared machine does not favour any of them.
    for r in $(seq "$REPEAT"); do
      for i in 0 1 2; do
        t=${TARGETS[$(((i + r - 1) % 3))]}
        run_pgbench "$t" "$mode" "$c" "$DURATION" "" "$r"
      done
    done
  done
done

# Each figure is the median over the rounds; a target aborted in any round
# is reported as aborted.
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{v[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for mode in $MODES; do for c in $CLIENTS; do for t in direct pgbouncer gatehouse; do
  key="$mode/$c/$t"
  for arr in TPS LAT CPU CPUUS LOAD; do
    declare -n A=$arr
    vals="" aborted=0
    for r in $(seq "$REPEAT"); do
      v=${A[$key#$r]:-}
      [ "$v" = aborted ] && aborted=1
      [ "$v" = - ] && v=""
      vals="$vals $v"
    done
    if [ "$arr" = TPS ] && [ "$aborted" = 1 ]; then A[$key]=aborted; else A[$key]=$(echo "$vals" | median); fi
    unset -n A
  done
  for r in $(seq "$REPEAT"); do
    if [ -n "${NOTE[$key#$r]:-}" ]; then NOTE[$key]="${NOTE[$key#$r]}"; fi
  done
done; done; done

cpu_snapshot >"$WORK/cpu1"
MEASURE_SECS=$(($(date +%s) - MEASURE_T0))
# Processes other than the benchmark's own (PostgreSQL, pgbench, PgBouncer,
# Gatehouse) that used over 5 % of one CPU during the measurements.
OTHERS=$(awk -v secs="$MEASURE_SECS" -v hz="$CLK_TCK" -v gh="$GH_PID" -v pgb="$PGB_PID" '
  NR == FNR { t[$1] = $3; next }
  {
    d = $3 - (($1 in t) ? t[$1] : 0)
    if ($1 == gh || $1 == pgb || $2 == "postgres" || $2 == "pgbench") next
    pct = 100 * d / hz / secs
    if (pct > 5) printf "%s%s (pid %s) %.0f%%", (n++ ? ", " : ""), $2, $1, pct
  }' "$WORK/cpu0" "$WORK/cpu1")
sleep 2
read -r MEM_LOAD_RSS MEM_LOAD_HWM < <(mem_of "$GH_PID")

# How much of the load was recorded. The recorder writes asynchronously:
# wait until the count stops moving. Statement numbers (seq) are given
# per session to every statement Gatehouse tracked (a simple Query or an
# Execute, run or refused), so sum(max(seq)) - count(*) counts statements
# that ran but never reached the store.
# Statement records are stored in chunks of JSON lines (session_chunks).
store_stats() {
  python3 - "$GH_DATA/state.db" <<'PY'
import json, sqlite3, sys
con = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
top, n, refused = {}, 0, 0
for sid, data in con.execute("select session_id, data from session_chunks"):
    for line in data.splitlines():
        if not line:
            continue
        r = json.loads(line)
        n += 1
        refused += r["decision"] != "allow"
        top[sid] = max(top.get(sid, 0), r["seq"])
print(sum(top.values()), n, refused)
PY
}
prev=-1
for _ in $(seq 120); do
  cur=$(store_stats)
  [ "$cur" = "$prev" ] && break
  prev=$cur
  sleep 1
done
read -r TRACKED RECORDED REFUSED <<<"$cur"

# PgBouncer keeps its server connections after clients leave; stop it so they
# are free for the idle-session measurement.
stop_pid "$PGB_PID"; PGB_PID=""
sleep 1
run_idle after-load


# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2f", a / b; else printf "-" }'; }
num() { awk -v a="$1" 'BEGIN { if (a ~ /^[0-9.]+$/) printf "%.0f", a; else printf "%s", a }'; }

echo "## Throughput (pgbench -S, transactions per second, ${DURATION} s per run)"
echo
echo "| mode | clients | TPS direct | TPS pgbouncer | TPS gatehouse | pgbouncer/direct | gatehouse/direct | gatehouse/pgbouncer |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
  for c in $CLIENTS; do
    d=${TPS[$mode/$c/direct]} b=${TPS[$mode/$c/pgbouncer]} g=${TPS[$mode/$c/gatehouse]}
    echo "| $mode | $c | $(num "$d") | $(num "$b") | $(num "$g") | $(ratio "$b" "$d") | $(ratio "$g" "$d") | $(ratio "$g" "$b") |"
  done
done
echo
echo "## Gatehouse against PgBouncer, round by round"
echo
echo "Each round runs the three targets one after another, so a round's two runs are seconds apart,"
echo "while a machine shared with others drifts over the whole run. The ratio within each round is"
echo "steadier than the ratio of the medians above, and its spread shows what this machine can resolve."
echo
echo "| mode | clients | gatehouse/pgbouncer per round | median | rounds with gatehouse ≥ pgbouncer |"
echo "|---|---:|---|---:|---:|"
for mode in $MODES; do
  for c in $CLIENTS; do
    pairs="" wins=0 n=0
    for r in $(seq "$REPEAT"); do
      g=${TPS[$mode/$c/gatehouse#$r]:-} b=${TPS[$mode/$c/pgbouncer#$r]:-}
      q=$(ratio "$g" "$b")
      pairs="$pairs${pairs:+ }$q"
      [ "$q" = - ] && continue
      n=$((n + 1))
      awk -v g="$g" -v b="$b" 'BEGIN { exit !(g >= b) }' && wins=$((wins + 1))
    done
    echo "| $mode | $c | $pairs | $(echo "$pairs" | tr ' ' '\n' | grep -v '^-$' | median | awk '{ if ($1 ~ /^[0-9.]+$/) printf "%.2f", $1; else printf "-" }') | $wins of $n |"
  done
done
echo
echo "## Latency and proxy CPU (same runs)"
echo
echo "| mode | clients | latency ms direct | latency ms pgbouncer | latency ms gatehouse | CPU % pgbouncer | CPU % gatehouse | CPU µs/txn pgbouncer | CPU µs/txn gatehouse | load avg (1 min) after gatehouse run |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
  for c in $CLIENTS; do
    echo "| $mode | $c | ${LAT[$mode/$c/direct]:--} | ${LAT[$mode/$c/pgbouncer]:--} | ${LAT[$mode/$c/gatehouse]:--} | ${CPU[$mode/$c/pgbouncer]:--} | ${CPU[$mode/$c/gatehouse]:--} | ${CPUUS[$mode/$c/pgbouncer]:--} | ${CPUUS[$mode/$c/gatehouse]:--} | ${LOAD[$mode/$c/gatehouse]:--} |"
  done
done
echo
echo "CPU % is the proxy process's user+system time over the run's wall time (100 % = one core of $(nproc));"
echo "CPU µs/txn is that time divided by the transactions pgbench completed (for Gatehouse it includes the recorder's writes)."
echo "Other processes busy during the ${MEASURE_SECS} s of measurements (over 5 % of one CPU): ${OTHERS:-none}."
for mode in $MODES; do for c in $CLIENTS; do for t in direct pgbouncer gatehouse; do
  if [ -n "${NOTE[$mode/$c/$t]:-}" ]; then echo "- aborted: ${NOTE[$mode/$c/$t]}"; fi
done; done; done
echo
echo "## Recording"
echo
echo "- transactions pgbench completed through Gatehouse in the measured runs: $GH_TXNS (plus warm-up and pgbench's set-up queries)"
echo "- statements Gatehouse tracked (sum over sessions of the highest statement number): $TRACKED"
echo "- statements in the store: $RECORDED, of which refused (not allowed): $REFUSED"
echo "- tracked but missing from the store (ran unrecorded): $((TRACKED - RECORDED))"
echo

idle_line() { # file → "n rss hwm" of the last checkpoint
  grep '^sessions=' "$1" | tail -1 | sed 's/sessions=\([0-9]*\) rss_kib=\([0-9]*\) hwm_kib=\([0-9]*\)/\1 \2 \3/'
}
idle_first() { grep '^sessions=0 ' "$1" | sed 's/.*rss_kib=\([0-9]*\).*/\1/'; }
echo "## Gatehouse memory"
echo
echo "| when | sessions | VmRSS MiB | VmHWM MiB |"
echo "|---|---:|---:|---:|"
echo "| at start (connection registered, one psql session done) | 0 | $(mib "$MEM_START_RSS") | $(mib "$MEM_START_HWM") |"
for phase in fresh after-load; do
  f="$WORK/idle-$phase.out"
  if [ "$phase" = after-load ]; then
    echo "| after the load (all pgbench clients gone) | 0 | $(mib "$MEM_LOAD_RSS") | $(mib "$MEM_LOAD_HWM") |"
  fi
  if read -r n r h < <(idle_line "$f"); then
    echo "| idle sessions held, $phase | $n | $(mib "$r") | $(mib "$h") |"
  fi
done
echo
echo "Idle sessions were held on $IDLE_ON."
echo
echo "Per idle session (slope of VmRSS over the checkpoints):"
for phase in fresh after-load; do
  f="$WORK/idle-$phase.out"
  per=$(sed -n 's/^per_session_kib=//p' "$f")
  read -r n r _ < <(idle_line "$f") || true
  base=$(idle_first "$f")
  if [ -n "$per" ] && [ -n "$base" ]; then
    if [ "$n" -ge "$IDLE" ]; then
      echo "- $phase: $per KiB/session over $n sessions (RSS delta $(mib $((r - base))) MiB)"
    else
      echo "- $phase: $per KiB/session over $n sessions (RSS delta $(mib $((r - base))) MiB); extrapolated to $IDLE sessions: $(awk -v b="$base" -v p="$per" -v n="$IDLE" 'BEGIN {printf "%.1f", (b + p * n) / 1024}') MiB RSS"
    fi
    grep '^sessions=' "$f" | sed 's/^/    /'
  else
    echo "- $phase: no figure ($(cat "$WORK/idle-$phase.err" 2>/dev/null | tail -1))"
  fi
done
HELD=$(idle_line "$WORK/idle-fresh.out" | cut -d' ' -f1)
if [ "${HELD:-0}" -lt "$IDLE" ]; then
  echo
  echo "PostgreSQL's max_connections is $MAX_CONN, and every Gatehouse session opens its own upstream session, so"
  echo "$IDLE idle sessions cannot be held here without changing the server; the figures above hold as many as it allows"
  echo "(leaving $PG_MARGIN connections for others) and the $IDLE-session RSS is extrapolated from the per-session slope."
fi
echo
echo "# finished:  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
