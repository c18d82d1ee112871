# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # script, keep and target_dir are the caller's, and it reads build and wanted
# common.sh: what the comparison and benchmark scripts share; sourced, not run.
#
# The caller sets `script` (its name, for messages), `keep` (1 to keep the work directory)
# and `target_dir` (cargo's target directory) before calling these.

# Prints "<script>: <words>".
say() { echo "$script: $*"; }

# Creates the work directory `work`, removed on exit unless `keep` is 1 (then its path is
# printed).
make_work_dir() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/$script.XXXXXX")
  trap remove_work_dir EXIT
}

# shellcheck disable=SC2317 # run by the trap
remove_work_dir() {
  if [ "$keep" = 1 ]; then
    say "work directory kept: $work"
  else
    rm -rf "$work"
  fi
}

# build WHAT DIR COMMAND...: runs COMMAND in DIR with its output appended to
# $work/build.log; on failure prints the log's end and exits 2, naming WHAT.
build() {
  local what=$1 dir=$2
  shift 2
  if ! (cd "$dir" && "$@") >>"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log" >&2
    say "building $what failed" >&2
    exit 2
  fi
}

# guest_images PROFILE IMAGE: the directory of the newest axvm-guests build holding IMAGE
# under $target_dir/PROFILE (ls -t: by modification time; the paths have no odd
# characters), or nothing.
guest_images() {
  local newest
  # shellcheck disable=SC2012
  newest=$(ls -t "$target_dir/$1"/build/axvm-guests-*/out/images/"$2" 2>/dev/null | head -n 1 || true)
  [ -n "$newest" ] && dirname "$newest"
}

# parse_options ARG...: the options the comparison scripts share: --no-build (build=0),
# --keep (keep=1), -h/--help (the script's header comment, then exit 0); other arguments
# starting with - are refused (exit 2); the rest are collected in `wanted`.
parse_options() {
  build=1
  keep=0
  wanted=()
  local arg
  for arg in "$@"; do
    case $arg in
      --no-build) build=0 ;;
      --keep) keep=1 ;;
      -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
      -*)
        say "unknown option $arg" >&2
        exit 2
        ;;
      *) wanted+=("$arg") ;;
    esac
  done
}
