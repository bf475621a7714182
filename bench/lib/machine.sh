# Sourced by the benchmark scripts: the whole machine's idle time and
# context switches, read from /proc/stat before and after a run.
#
#   machine_counters        prints "IDLE_TICKS SWITCHES" (idle + iowait over all CPUs)
#   machine_per_txn A B N   from two such readings and N transactions, prints
#                           "IDLE_US_PER_TXN SWITCHES_PER_TXN"
machine_counters() { awk '/^cpu / {i = $5 + $6} /^ctxt/ {c = $2} END {print i, c}' /proc/stat; }
machine_per_txn() {
  local a=($1) b=($2)
  awk -v i=$((b[0] - a[0])) -v x=$((b[1] - a[1])) -v n="$3" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.2f %.2f", i * 1e6 / hz / n, x / n}'
}
