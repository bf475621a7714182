# Sourced by the benchmark scripts: starts a Gatehouse server (plaintext
# PostgreSQL listener, API on loopback, no MySQL or AWS listener) on a data
# directory of its own, and registers the PostgreSQL connection `bench`
# (postgres@127.0.0.1:5432/bench, for the admin group).
#
#   start_gatehouse BINARY DATA_DIR LOG [VAR=VALUE...]
#
# The variables are set in the server's environment. Sets GH_PID, GH_PORT
# (the PostgreSQL listener's port), GH_API (the API's address) and GH_TOKEN
# (the admin token), and adds
# the server's pid to the caller's PIDS array (for its clean-up).
start_gatehouse() {
  local bin=$1 data=$2 log=$3 api="" port=""
  shift 3
  env "$@" "$bin" serve --data-dir "$data" --api-listen 127.0.0.1:0 --pg-listen 127.0.0.1:0 \
    --mysql-listen off --aws-listen off >"$log" 2>&1 &
  GH_PID=$!
  PIDS+=("$GH_PID")
  for _ in $(seq 600); do
    api=$(grep -o 'api=http://127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null | head -1 | cut -d= -f2 || true)
    port=$(grep -o 'postgres=127\.0\.0\.1:[0-9]*' "$log" 2>/dev/null | head -1 | cut -d: -f2 || true)
    [ -n "$api" ] && [ -n "$port" ] && [ -s "$data/admin.token" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$log" >&2; return 1; }
  GH_PORT=$port
  GH_API=$api
  GH_TOKEN=$(cat "$data/admin.token")
  GATEHOUSE_URL=$api GATEHOUSE_TOKEN=$GH_TOKEN "$bin" connections add bench --kind postgres \
    --url "postgres://postgres@127.0.0.1:5432/bench?sslmode=disable" --group admin >/dev/null
}
