#!/usr/bin/env bash
# Benchmark (not a test): sysbench oltp_point_select on MariaDB directly and
# through Gatehouse's MySQL proxy (policy engine and recording on, the
# default), side by side, interleaved, medians reported; prepared
# statements (binary rows) and plain queries (text rows).
#
#   bench/mysql-sysbench.sh [--duration SECONDS] [--repeat ROUNDS] [--clients "1 8"] [--skip-build]
#
# Needs: MariaDB on 127.0.0.1:3306 (root, empty password, database `test`),
# python3. Installs sysbench (Debian) if missing. (mysqlslap cannot be used:
# it logs in without a database and selects one afterwards, and Gatehouse
# needs the connection's name at login.) Uses free ports only and cleans up
# what it starts. Every hop is plaintext from loopback (the token travels as
# a mysql_clear_password answer), so neither side pays for TLS. No MySQL
# proxy is packaged for Debian here (ProxySQL, MaxScale), so there is no
# third column.
set -euo pipefail

DURATION=10
REPEAT=3
CLIENTS="1 8"
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { echo "[$(date '+%H:%M:%S')] $*" >&2; }
die() { say "error: $*"; exit 1; }

repro="cd $ROOT && bench/mysql-sysbench.sh --duration $DURATION --repeat $REPEAT --clients '$CLIENTS'"
[ "$BUILD" = 1 ] || repro="$repro --skip-build"
echo "# reproduce: $repro"
echo "# started:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# commit:    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree has uncommitted changes)')"
echo "# machine:   $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"

WORK=$(mktemp -d /tmp/gatehouse-mysql-sysbench.XXXXXX)
GH_PID=""
SB=(oltp_point_select --mysql-host=127.0.0.1 --mysql-db=test --tables=1 --table-size=10000)
cleanup() {
  local rc=$?
  if [ -n "$GH_PID" ] && kill -0 "$GH_PID" 2>/dev/null; then kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true; fi
  sysbench "${SB[@]}" --mysql-port=3306 --mysql-user=root cleanup >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! command -v sysbench >/dev/null; then
  say "installing sysbench from Debian"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sysbench >&2 ||
    { $SUDO apt-get update -qq >&2; $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sysbench >&2; }
fi
mariadb -h 127.0.0.1 -P 3306 -u root test -e 'SELECT 1' >/dev/null || die "cannot reach MariaDB at 127.0.0.1:3306 as root"

if [ "$BUILD" = 1 ]; then
  say "building the release binary (cargo build --release -p gatehouse)"
  cargo build --release -p gatehouse >&2
fi
GH_BIN="${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}"
[ -x "$GH_BIN" ] || die "$GH_BIN is missing (run without --skip-build)"

say "preparing test.sbtest1 (10,000 rows)"
sysbench "${SB[@]}" --mysql-port=3306 --mysql-user=root cleanup >/dev/null 2>&1 || true
sysbench "${SB[@]}" --mysql-port=3306 --mysql-user=root prepare >"$WORK/prepare.log" 2>&1 ||
  { cat "$WORK/prepare.log" >&2; die "sysbench prepare failed"; }

GH_DATA="$WORK/data"
"$GH_BIN" serve --data-dir "$GH_DATA" --api-listen 127.0.0.1:0 --pg-listen off --mysql-listen 127.0.0.1:0 \
  >"$WORK/gatehouse.log" 2>&1 &
GH_PID=$!
GH_API="" GH_MY=""
for _ in $(seq 600); do
  GH_API=$(grep -o 'api=http://127\.0\.0\.1:[0-9]*' "$WORK/gatehouse.log" 2>/dev/null | head -1 | cut -d= -f2 || true)
  GH_MY=$(grep -o 'mysql=127\.0\.0\.1:[0-9]*' "$WORK/gatehouse.log" 2>/dev/null | head -1 | cut -d: -f2 || true)
  [ -n "$GH_API" ] && [ -n "$GH_MY" ] && break
  kill -0 "$GH_PID" 2>/dev/null || { cat "$WORK/gatehouse.log" >&2; die "Gatehouse exited"; }
  sleep 0.1
done
[ -n "$GH_MY" ] || die "Gatehouse did not report its MySQL listener"
for _ in $(seq 100); do [ -s "$GH_DATA/admin.token" ] && break; sleep 0.1; done
TOKEN=$(cat "$GH_DATA/admin.token")
# The connection is named after the database, which sysbench names at login.
GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN "$GH_BIN" connections add test --kind mysql \
  --url "mysql://root@127.0.0.1:3306/test?sslmode=disable" --group admin >&2
MYSQL_PWD=$TOKEN mariadb -h 127.0.0.1 -P "$GH_MY" -u bench test -e 'SELECT count(*) FROM sbtest1' >/dev/null ||
  { cat "$WORK/gatehouse.log" >&2; die "cannot query through Gatehouse"; }
say "Gatehouse $GH_PID: MySQL on 127.0.0.1:$GH_MY"
echo "# runs:      sysbench oltp_point_select, $DURATION s per run, $REPEAT interleaved rounds (median), clients {$CLIENTS}, --db-ps-mode auto (prepared) and disable (text)"
echo

# → queries per second
run() { # port user password clients ps-mode
  local out
  out=$(sysbench "${SB[@]}" --mysql-port="$1" --mysql-user="$2" --mysql-password="$3" \
    --threads="$4" --time="$DURATION" --db-ps-mode="$5" run 2>&1) ||
    { echo "$out" >&2; die "sysbench failed on port $1"; }
  echo "$out" | awk '/queries:/ {gsub(/\(/, "", $3); print int($3)}'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| statements | clients | direct q/s | Gatehouse q/s | Gatehouse / direct |"
echo "|---|---|---|---|---|"
for mode in auto disable; do
  label=$([ "$mode" = auto ] && echo prepared || echo text)
  for c in $CLIENTS; do
    d="" g=""
    for r in $(seq "$REPEAT"); do
      say "$label, clients=$c, round $r"
      d="$d $(run 3306 root "" "$c" "$mode")"
      g="$g $(run "$GH_MY" bench "$TOKEN" "$c" "$mode")"
    done
    dm=$(echo $d | median)
    gm=$(echo $g | median)
    echo "| $label | $c | $dm | $gm | $(awk -v a="$gm" -v b="$dm" 'BEGIN {printf "%.2f", a / b}') |"
  done
done
SESSIONS=$(GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN "$GH_BIN" sessions list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["sessions"]))')
echo
echo "Gatehouse recorded $SESSIONS sessions, every statement with its decision and first rows."
