#!/usr/bin/env bash
# Experiment (not a test, not part of the product): Gatehouse itself with its
# session threads waiting in io_uring instead of epoll. Builds the current
# commit with gatehouse-ring.patch applied (in a git worktree of its own, into
# target/experiments; the first build takes about 10 minutes), then runs
# compare.sh with PgBouncer, that build as it is (`epoll`) and the same build
# with GATEHOUSE_IO_URING=1 (`ring`), two session threads each unless
# --threads says otherwise.
#
# What the patch does (crates/gatehouse-pg/src/uring.rs): each session thread
# polls a tokio LocalSet from a loop of its own that waits in one io_uring
# (SINGLE_ISSUER | DEFER_TASKRUN); tokio timers and sockets register with the
# main runtime, whose handle the thread enters; a plain session's two sockets
# leave tokio's reactor and are read and written through the ring (a read
# copies out of the ring's buffer; a send is started and waited for only
# before the next one). It is for measurement only: TLS sessions keep tokio's
# sockets (woken from the main runtime), a read in flight is not cancelled
# when its session ends (the socket stays open until it completes), and the
# patch relaxes the workspace's `unsafe_code = "forbid"`.
#
#   bench/experiments/io-uring/gatehouse-ring.sh [--bin PATH] [compare.sh's options]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib/patched.sh
. "$ROOT/bench/lib/patched.sh"
ARGS=(--threads 2)
patched_binary ring "$ROOT/bench/experiments/io-uring/gatehouse-ring.patch" "$@"

"$ROOT/bench/experiments/compare.sh" "${ARGS[@]}" \
  --title "gatehouse-ring: $BIN (commit $(git rev-parse --short HEAD) + bench/experiments/io-uring/gatehouse-ring.patch)" \
  epoll="$BIN" ring="$BIN,GATEHOUSE_IO_URING=1"
