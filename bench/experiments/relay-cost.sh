#!/usr/bin/env bash
# Experiment (not a test, not part of the product): where Gatehouse's CPU per
# pgbench transaction goes. Builds the current commit with
# relay-cost.patch applied (in a git worktree of its own, with its own target
# directory; the first build takes about 10 minutes), then runs pgbench -S
# side by side against PgBouncer and four Gatehouse instances of that build:
#
#   full   the product as it is (policy, recording, masking hooks)
#   nolog  GH_EXP=nolog: everything but the statement records (no JSON,
#          no chunks, no store writes)
#   (a `nosend` variant, records written but never sent, was dropped in
#   session 34 when the recorder's chunks changed shape)
#   raw    GH_EXP=raw: the same session threads relaying bytes without
#          looking at them (no framing, policy or recording)
#
# The measuring is compare.sh's: TPS and the process's on-CPU time per
# transaction, split into the session threads and the rest (recorder, store).
# The patch is for measurement only:
# GH_EXP must never be part of a build anyone runs.
#
#   bench/experiments/relay-cost.sh [--duration S] [--rounds N] [--clients "8 32"] [--modes prepared] [--threads 1]
#                                   [--bin PATH]   (a binary built with the patch already: no build)
#
# Needs what bench/experiments/compare.sh needs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
# shellcheck source=bench/lib/patched.sh
. "$ROOT/bench/lib/patched.sh"
# Everything but --bin is compare.sh's (same defaults: 5 s, 3 rounds, 8 and
# 32 clients, prepared, one session thread).
ARGS=()
patched_binary relay-cost "$ROOT/bench/experiments/relay-cost.patch" "$@"

# ---------------------------------------------------------------- measure
"$ROOT/bench/experiments/compare.sh" "${ARGS[@]}" \
  --title "relay-cost: $BIN (commit $(git rev-parse --short HEAD) + bench/experiments/relay-cost.patch)" \
  full="$BIN" nolog="$BIN,GH_EXP=nolog" raw="$BIN,GH_EXP=raw"
