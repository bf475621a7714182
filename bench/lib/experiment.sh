# Sourced by the experiment scripts (bench/experiments): a work directory
# that goes, with the processes started, when the script ends; free ports;
# the database `bench`; PgBouncer in front of it.
#
#   experiment_workdir NAME   sets WORK (a fresh directory) and PIDS (kill
#                             list; add each background process's pid)
#   free_port                 prints a free TCP port on 127.0.0.1
#   ensure_bench_db           creates and fills `bench` (pgbench -i -s 10) if missing
#   start_pgbouncer           PgBouncer (session mode) for `bench` under $WORK/pgb;
#                             sets PGB_PORT and PGB_PID (in PIDS too)

experiment_workdir() {
  WORK=$(mktemp -d "/tmp/gatehouse-$1.XXXXXX")
  chmod 755 "$WORK"
  PIDS=()
  trap experiment_cleanup EXIT
  trap 'exit 130' INT TERM
}

experiment_cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

psql_direct() { PGSSLMODE=disable psql -X -q -h 127.0.0.1 -p 5432 -U postgres -v ON_ERROR_STOP=1 "$@"; }

ensure_bench_db() {
  if [ "$(psql_direct -d postgres -Atc "select count(*) from pg_database where datname = 'bench'")" = 0 ]; then
    psql_direct -d postgres -c 'CREATE DATABASE bench'
    PGSSLMODE=disable pgbench -i -q -s 10 -h 127.0.0.1 -U postgres bench >/dev/null 2>&1
    psql_direct -d bench -c 'VACUUM ANALYZE'
  fi
}

start_pgbouncer() {
  local args=()
  PGB_PORT=$(free_port)
  # shellcheck source=bench/lib/pgbouncer.sh
  . "$(dirname "${BASH_SOURCE[0]}")/pgbouncer.sh"
  write_pgbouncer_config "$WORK/pgb" "$PGB_PORT" bench 127.0.0.1 5432 postgres
  [ "$(id -u)" = 0 ] && args=(-u postgres) && chown -R postgres "$WORK/pgb"
  "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" "${args[@]}" "$WORK/pgb/pgbouncer.ini" >"$WORK/pgb/stdout.log" 2>&1 &
  PGB_PID=$!
  PIDS+=("$PGB_PID")
  for _ in $(seq 100); do
    PGSSLMODE=disable psql -X -h 127.0.0.1 -p "$PGB_PORT" -U postgres -d bench -Atc 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "PgBouncer did not answer on port $PGB_PORT" >&2
  return 1
}
