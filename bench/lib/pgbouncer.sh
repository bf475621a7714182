# Sourced by the benchmark scripts: PgBouncer in session mode in front of one
# PostgreSQL database, plaintext on both sides, trust authentication.
#
#   write_pgbouncer_config DIR LISTEN_PORT DB PG_HOST PG_PORT PG_USER
#
# writes DIR/pgbouncer.ini and DIR/userlist.txt (logging to DIR/pgbouncer.log).
write_pgbouncer_config() {
  local dir=$1 port=$2 db=$3 host=$4 pg_port=$5 user=$6
  mkdir -p "$dir"
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
$db = host=$host port=$pg_port dbname=$db user=$user

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = session
max_client_conn = 1000
default_pool_size = 100
max_db_connections = 0
server_tls_sslmode = disable
client_tls_sslmode = disable
logfile = $dir/pgbouncer.log
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
INI
  echo "\"$user\" \"\"" >"$dir/userlist.txt"
  chmod -R a+rX "$dir"
}
