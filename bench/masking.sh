#!/usr/bin/env bash
# Benchmark (not a test): a large result fetched directly from PostgreSQL
# and through Gatehouse with masking on (2 masked columns, 1 text column
# under content detectors), side by side; the wall-time ratio and the
# gateway's peak memory for two result sizes (flat memory means streaming).
# Then the detectors' throughput (cargo bench).
#
#   bench/masking.sh [--rows N] [--repeat R] [--skip-build]
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth for postgres) and psql.
set -euo pipefail

ROWS=1000000
REPEAT=3
BUILD=1
DB=bench
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --skip-build) BUILD=0; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
say() { echo "[$(date '+%H:%M:%S')] $*" >&2; }
die() { say "error: $*"; exit 1; }

echo "# reproduce: cd $ROOT && bench/masking.sh --rows $ROWS --repeat $REPEAT"
echo "# started:   $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "# commit:    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (work tree has uncommitted changes)')"
echo "# machine:   $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo

WORK=$(mktemp -d /tmp/gatehouse-masking.XXXXXX)
GH_PID=""
cleanup() {
  local rc=$?
  if [ -n "$GH_PID" ] && kill -0 "$GH_PID" 2>/dev/null; then kill "$GH_PID"; wait "$GH_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
mem_hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
psql_direct() { PGSSLMODE=disable psql -X -q -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 "$@"; }

if [ "$BUILD" = 1 ]; then
  scripts/install-build-deps
  say "building the release binary"
  cargo build --release -p gatehouse >&2
fi
GH_BIN="${GATEHOUSE_BIN:-$ROOT/target/release/gatehouse}"

if [ "$(psql_direct -d postgres -Atc "select count(*) from pg_database where datname = '$DB'")" = 0 ]; then
  psql_direct -d postgres -c "CREATE DATABASE $DB"
fi
say "creating gh_mask_bench with $ROWS rows (5 columns; email and card masked, note scanned)"
psql_direct -d "$DB" <<SQL
DROP TABLE IF EXISTS gh_mask_bench;
CREATE TABLE gh_mask_bench (id int, amount numeric(12,2), email text, card text, note text);
INSERT INTO gh_mask_bench
SELECT i, (i % 100000) / 100.0, 'user' || i || '@example.com', '4111111111111111',
       CASE WHEN i % 50 = 0 THEN 'customer asked to be reached at someone' || i || '@example.org about order ' || i
            ELSE 'order ' || i || ' shipped to warehouse ' || (i % 17) || ', signed by the courier on arrival' END
FROM generate_series(1, $ROWS) AS i;
ANALYZE gh_mask_bench;
SQL

GH_DATA="$WORK/data"
"$GH_BIN" serve --data-dir "$GH_DATA" --api-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 >"$WORK/gh.log" 2>&1 &
GH_PID=$!
for _ in $(seq 600); do
  GH_API=$(grep -o 'api=http://127\.0\.0\.1:[0-9]*' "$WORK/gh.log" | head -1 | cut -d= -f2 || true)
  GH_PG=$(grep -o 'postgres=127\.0\.0\.1:[0-9]*' "$WORK/gh.log" | head -1 | cut -d: -f2 || true)
  [ -n "$GH_API" ] && [ -n "$GH_PG" ] && [ -s "$GH_DATA/admin.token" ] && break
  kill -0 "$GH_PID" 2>/dev/null || { cat "$WORK/gh.log" >&2; die "Gatehouse exited"; }
  sleep 0.1
done
TOKEN=$(cat "$GH_DATA/admin.token")
export GATEHOUSE_URL=$GH_API GATEHOUSE_TOKEN=$TOKEN
"$GH_BIN" connections add "$DB" --kind postgres --url "postgres://postgres@127.0.0.1:5432/$DB?sslmode=disable" --group admin >/dev/null
cat >"$WORK/policy.toml" <<'TOML'
[[masks]]
columns = ["public.gh_mask_bench.email"]
method = "partial"

[[masks]]
columns = ["public.gh_mask_bench.card"]
method = "redact"

[[detectors]]
kinds = ["email", "credit_card", "iban", "us_ssn", "phone", "aws_access_key", "private_key", "jwt"]
TOML
"$GH_BIN" apply -f "$WORK/policy.toml" >/dev/null

through() { PGSSLMODE=disable PGPASSWORD=$TOKEN psql -X -q -A -t -h 127.0.0.1 -p "$GH_PG" -U bench -d "$DB" "$@"; }
# Check that masking is on before timing anything.
sample=$(through -c "SELECT email, card, note FROM gh_mask_bench WHERE id = 50")
case "$sample" in
  *user50@example.com*|*4111111111111111*|*someone50@example.org*) die "masking is not applied: $sample" ;;
esac
say "masked sample row: $sample"

QUERY="SELECT id, amount, email, card, note FROM gh_mask_bench"
time_of() { # command… → seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# Peak memory for a small result first, then the large one: the same peak
# means results stream through without being held whole.
SMALL=$((ROWS / 10))
through -c "$QUERY LIMIT $SMALL" >/dev/null
HWM_SMALL=$(mem_hwm "$GH_PID")
D="" G=""
for r in $(seq "$REPEAT"); do
  d=$(time_of psql_direct -A -t -d "$DB" -c "$QUERY")
  g=$(time_of through -c "$QUERY")
  say "round $r: direct ${d}s, through Gatehouse ${g}s"
  D="$D $d" G="$G $g"
done
HWM_LARGE=$(mem_hwm "$GH_PID")
DM=$(echo "$D" | median) GM=$(echo "$G" | median)

echo "## Masked result, $ROWS rows (psql, text format, median of $REPEAT)"
echo
echo "| | wall time s | ratio to direct |"
echo "|---|---:|---:|"
echo "| direct | $DM | 1.00 |"
echo "| through Gatehouse (2 columns masked, 8 detectors on the text column) | $GM | $(awk -v a="$GM" -v b="$DM" 'BEGIN {printf "%.2f", a / b}') |"
echo
echo "Gateway peak memory (VmHWM): $(mib "$HWM_SMALL") MiB after a $SMALL-row result, $(mib "$HWM_LARGE") MiB after the $ROWS-row results."
echo
echo "## Detectors"
echo
cargo bench -q -p gatehouse-policy --bench detectors 2>/dev/null | sed 's/^/    /'
echo
echo "# finished:  $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
