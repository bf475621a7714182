# Sourced by the experiment scripts (after they set ROOT): builds the current
# commit with a measurement patch applied, in a git worktree of its own, into
# target/experiments (the first build takes about 10 minutes).
#
#   patched_binary NAME PATCH ARG...
#       takes `--bin PATH` from the arguments (a binary built with the patch
#       already: no build) and appends the others to the caller's ARGS; makes
#       WORK (/tmp/gatehouse-NAME.*, removed on exit with the worktree); sets
#       BIN to the binary, built with PATCH unless --bin named one

patched_binary() {
  local name=$1 patch=$2
  shift 2
  BIN=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin) BIN=$2; shift 2 ;;
      *) ARGS+=("$1"); shift ;;
    esac
  done
  patched_work "$name"
  [ -n "$BIN" ] || build_patched "$patch"
}

patched_work() {
  WORK=$(mktemp -d "/tmp/gatehouse-$1.XXXXXX")
  trap patched_cleanup EXIT
  trap 'exit 130' INT TERM
}

patched_cleanup() {
  local rc=$?
  git -C "$ROOT" worktree remove --force "$WORK/src" 2>/dev/null || true
  rm -rf "$WORK"
  exit $rc
}

build_patched() {
  local patch=$1
  echo "[$(date '+%H:%M:%S')] building $(git -C "$ROOT" rev-parse --short HEAD) with $(basename "$patch") (target/experiments)" >&2
  git -C "$ROOT" worktree add --detach "$WORK/src" HEAD >/dev/null 2>&1
  git -C "$WORK/src" apply "$patch"
  (cd "$WORK/src" && cargo build --release --locked -p gatehouse --target-dir "$ROOT/target/experiments" >&2)
  BIN="$ROOT/target/experiments/release/gatehouse"
}
