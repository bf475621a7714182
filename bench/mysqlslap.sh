#!/usr/bin/env bash
# Benchmark (not a test): a select-only mysqlslap load on MariaDB directly and
# through Gatehouse's MySQL proxy (policy engine and recording on, the
# default), side by side, interleaved, medians reported.
#
#   bench/mysqlslap.sh [--queries N] [--repeat ROUNDS] [--clients "1 8"] [--skip-build]
#
# Needs: MariaDB on 127.0.0.1:3306 (root, empty password, database `test`),
# mysqlslap (Debian's mariadb-client), python3. Uses free ports only and
# cleans up what it starts. Every hop is plaintext from loopback (the token
# travels as a mysql_clear_password answer), so neither side pays for TLS.
# No MySQL proxy is packaged for Debian here (ProxySQL, MaxScale), so there
# is no third column.
set -euo pipefail

QUERIES=20000
REPEAT=3
CLIENTS="1 8"
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --queries) QUERIES=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { echo "[$(date '+%H:%M:%S')] $*" >&2; }
die() { say "error: $*"; exit 1; }

repro="cd $ROOT && bench/mysqlslap.sh --queries $QUERIES --repeat $REPEAT --clients '$CLIENTS'"
[ "$BUILD" = 1 ] || repro="$repro --skip-build"
echo "# reproduce: $repro"
echo "# started:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# commit:    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree has uncommitted changes)')"
echo "# machine:   $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"

WORK=$(mktemp -d /tmp/gatehouse-mysqlslap.XXXXXX)
GH_PID=""
cleanup() {
  local rc=$?
  if [ -n "$GH_PID" ] && kill -0 "$GH_PID" 2>/dev/null; then kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v mysqlslap >/dev/null || die "mysqlslap is not installed (Debian: mariadb-client)"
direct() { mariadb -h 127.0.0.1 -P 3306 -u root --batch --skip-column-names test -e "$1"; }
direct 'SELECT 1' >/dev/null || die "cannot reach MariaDB at 127.0.0.1:3306 as root"

if [ "$BUILD" = 1 ]; then
  say "building the release binary (cargo build --release -p gatehouse)"
  cargo build --release -p gatehouse >&2
fi
GH_BIN="${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}"
[ -x "$GH_BIN" ] || die "$GH_BIN is missing (run without --skip-build)"

say "creating test.gh_bench (10,000 rows)"
direct "DROP TABLE IF EXISTS gh_bench; CREATE TABLE gh_bench (id INT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(10,2));
  INSERT INTO gh_bench SELECT seq, CONCAT('name-', seq), seq / 7 FROM seq_1_to_10000;"
QUERY="SELECT id, name, amount FROM gh_bench WHERE id = 4242"

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
# The connection is named after the database, as mysqlslap selects it with USE.
GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN "$GH_BIN" connections add test --kind mysql \
  --url "mysql://root@127.0.0.1:3306/test?sslmode=disable" --group admin >&2
MYSQL_PWD=$TOKEN mariadb -h 127.0.0.1 -P "$GH_MY" -u bench test -e "$QUERY" >/dev/null ||
  { cat "$WORK/gatehouse.log" >&2; die "cannot query through Gatehouse"; }
say "Gatehouse $GH_PID: MySQL on 127.0.0.1:$GH_MY"
echo "# runs:      mysqlslap --query \"$QUERY\", $QUERIES queries per run, $REPEAT interleaved rounds (median), clients {$CLIENTS}"
echo

# → queries per second
slap() { # port password clients
  local out secs
  out=$(MYSQL_PWD=$2 mysqlslap -h 127.0.0.1 -P "$1" -u bench --create-schema=test --no-drop \
    --query="$QUERY" --concurrency="$3" --iterations=1 --number-of-queries="$QUERIES" 2>&1) ||
    { echo "$out" >&2; die "mysqlslap failed on port $1"; }
  secs=$(echo "$out" | awk '/Average number of seconds/ {print $(NF-1)}')
  awk -v q="$QUERIES" -v s="$secs" 'BEGIN {printf "%.0f", q / s}'
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "| clients | direct q/s | Gatehouse q/s | Gatehouse / direct |"
echo "|---|---|---|---|"
for c in $CLIENTS; do
  d="" g=""
  for r in $(seq "$REPEAT"); do
    say "clients=$c round $r"
    d="$d $(slap 3306 "" "$c")"
    g="$g $(slap "$GH_MY" "$TOKEN" "$c")"
  done
  dm=$(echo $d | median)
  gm=$(echo $g | median)
  echo "| $c | $dm | $gm | $(awk -v a="$gm" -v b="$dm" 'BEGIN {printf "%.2f", a / b}') |"
done
SESSIONS=$(GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN "$GH_BIN" sessions list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["sessions"]))')
echo
echo "Gatehouse recorded $SESSIONS sessions (each statement with its decision and first rows)."
direct "DROP TABLE IF EXISTS gh_bench"
