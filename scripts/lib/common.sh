# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # script, keep, target_dir, work, stage and the L1 settings are the caller's, and it reads build and wanted
# common.sh: what the comparison, benchmark and KVM harness scripts share; sourced, not run.
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

# Prints "<script>: <words>" on stderr and exits 2 ("could not run").
die() {
  echo "$script: $*" >&2
  exit 2
}

# --- the KVM harnesses' L1 machine (kvm-amd.sh, kvm-arm64.sh) --------------------------
# The caller sets `work` (its work directory, with logs/ for the consoles), `stage` (the L1
# initramfs's tree; $stage/harness/steps lists the steps, "name command" a line, the first
# one preparing /dev/kvm), `run_timeout` and `silence_limit` (seconds), and `l1_qemu` (an
# array: QEMU and its arguments for L1, machine, kernel and initramfs; the console, the
# monitor and the logs are added here) with `l1_summary` (how it is described in messages),
# and packs $stage into $work/l1.cpio.

# l1_boot LOG: one boot of L1 that runs $stage/harness/steps, its console in LOG
# (console.N.log; QEMU's log of guest errors and CPU resets beside it, qemu.N.log). Steps
# print as they go (each test as it ends; a Linux boot all along), so a console silent for
# $silence_limit seconds means L1 froze, and QEMU is stopped. (A step silent that long on
# its own would stop every boot there, and the report shows its last lines.) Prints each
# step's END line and the Linux boots' and virtio tests' verdicts as they come.
l1_boot() {
  local log=$1
  : >"$log"
  set +e
  timeout "$run_timeout" "${l1_qemu[@]}" -nographic -no-reboot -monitor none -nodefaults \
    -serial "file:$log" -d guest_errors,cpu_reset -D "$work/logs/qemu.${log##*console.}" \
    </dev/null 2> >(grep -v "TCG doesn't support requested feature" >&2) &
  local qemu_pid=$!
  (
    while kill -0 $qemu_pid 2>/dev/null; do
      sleep 10
      if [ $(($(date +%s) - $(stat -c %Y "$log"))) -gt "$silence_limit" ]; then
        say "L1 printed nothing for ${silence_limit} s: it froze; stopping QEMU"
        kill $qemu_pid
        break
      fi
    done
  ) &
  local silence_watch=$!
  tail -n +1 -F --pid=$qemu_pid "$log" 2>/dev/null | grep --line-buffered -E '^@@@ (END|DONE)|^linux-boot:|^virtio:' |
    sed -u 's/^@@@ //'
  wait $qemu_pid
  local status=$?
  kill $silence_watch 2>/dev/null
  wait $silence_watch 2>/dev/null
  set -e
  case $status in
    0) ;;
    124) say "L1 ran out of time (${run_timeout} s); QEMU was stopped" ;;
    *) say "QEMU exited with status $status" ;;
  esac
}

# l1_run: boots L1 until every step has run. An L1 that stops before its last step (it
# froze, or reset itself: under -no-reboot QEMU then exits) is a fault of the emulated
# machine or its kernel, which no user program can cause; the steps it did not finish run
# again in a fresh L1 (after the first step, which prepares /dev/kvm), at most three times,
# and the report names each stop.
l1_run() {
  rm -rf "$work/logs"
  mkdir -p "$work/logs"
  local attempt log all_steps=$stage/harness/steps.all
  cp "$stage/harness/steps" "$all_steps"
  for attempt in 1 2 3 4; do
    log=$work/logs/console.$attempt.log
    say "booting L1 (attempt $attempt): $l1_summary (log: $log)"
    l1_boot "$log"
    grep -aq '^@@@ DONE' "$log" && return
    # Keep the first step and the steps without an END line, in their order.
    awk 'NR == FNR { if ($1 == "@@@" && $2 == "END") done[$3] = 1; next }
         FNR == 1 || !($1 in done)' <(tr -d '\r' <"$log") "$stage/harness/steps" \
      >"$stage/harness/steps.next"
    mv "$stage/harness/steps.next" "$stage/harness/steps"
    say "L1 stopped during $(grep -a '^@@@ BEGIN' "$log" | tail -n 1 | cut -d' ' -f3 | tr -d '\r'); $(($(wc -l <"$stage/harness/steps") - 1)) step(s) left"
    [ "$attempt" = 4 ] || (cd "$stage" && find . | cpio -o -H newc --quiet) >"$work/l1.cpio"
  done
}

# suite_filter: of the "package target path" lines of test executables on stdin, those whose
# target $suite_only names (comma-separated: the harness's KVM_*_SUITE), all when it is empty.
suite_filter() {
  local package name path
  while read -r package name path; do
    [[ -z $suite_only || ",$suite_only," == *",$name,"* ]] && echo "$package $name $path"
  done
  return 0
}

# suite_step NAME DIR COMMAND: the L1 step line that runs a test executable's COMMAND in DIR,
# and once more when it fails, saying so on a "RETRIED" line (the report prints it): the
# emulated L1 now and then stalls a vCPU thread or loses an interrupt (a guest that hangs
# mid-line, or resets), which a second run tells from a test that fails every time.
suite_step() {
  echo "$1 cd $2 && { $3 || { echo \"$1: RETRIED: the first run failed (above)\"; $3; }; }"
}
