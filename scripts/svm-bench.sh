#!/usr/bin/env bash
# svm-bench.sh: the exit round trip of the same guest under three hosts, in one run:
#
#   svm      the type-1 SVM hypervisor (hypervisor/) booted by QEMU TCG with an emulated
#            AMD SVM CPU (-cpu EPYC): scripts/svm-run.sh exitloop.toml exitloop. The
#            hypervisor times its vCPU from its first exit to its last and prints
#              axvm-hv: vCPU 0: <N> exits in <T> us, <X> us per exit
#   kvm-amd  axvm on kvm_amd inside QEMU TCG (-cpu EPYC), the L1 machine of
#            scripts/kvm-amd.sh, through its `mine` step: `axvm run --stats` in L1
#   pvm      axvm on this machine's /dev/kvm (kvm_pvm here): `axvm run --stats`
#
# The guest is guests/exitloop: 20 000 `out dx, al` to COM1's scratch register (port 0x3ff)
# and status 0 to the exit port, 20 001 exits, nothing printed; with its own config
# (1 MiB RAM, one vCPU, real mode at 0x8000). On the KVM hosts the figure comes from the
# first line of the `--stats` report, "exit statistics: <N> exits in <T> (...)", where T
# runs from the first exit to the end of the last one's handling: the same span the
# hypervisor times. Every side's figure is T / N, per exit, in microseconds.
#
# Usage: scripts/svm-bench.sh [--no-build] [--keep] [--runs N] [SIDE...]
#
#   SIDE        svm, kvm-amd, pvm (default: all three, in that order)
#   --runs N    runs per side (default 5, or SVM_BENCH_RUNS), after one warm-up run that
#               is not counted; the table gives the median and the range
#   --no-build  use the release axvm, the guest images and the hypervisor already built
#   --keep      keep the work directory (configs, outputs) and print its path
#
# Environment: SVM_BENCH_RUNS, CARGO_TARGET_DIR, and what scripts/svm-run.sh (SVM_TIMEOUT)
# and scripts/kvm-amd.sh (KVM_AMD_*) read. The svm side is skipped, with a message, while
# this tree has no hypervisor/ or scripts/svm-run.sh; the pvm side without /dev/kvm.
#
# A benchmark, not a test: it is not part of .ci/run. Exits 0 when every side that ran
# measured 20 001 exits and status 0 in every run, 1 when one did not, 2 when it could not
# run (a failed build, a bad argument).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script="svm-bench"
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"
target_dir=${CARGO_TARGET_DIR:-$root/target}
runs=${SVM_BENCH_RUNS:-5}
# The exits the guest makes: 20 000 port writes and the exit port's.
expected_exits=20001

build=1
keep=0
sides=()
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    --runs)
      [ $# -ge 2 ] || { echo "svm-bench: --runs needs a number" >&2; exit 2; }
      runs=$2
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    svm | kvm-amd | pvm) sides+=("$1") ;;
    *)
      echo "svm-bench: unknown argument $1 (sides: svm kvm-amd pvm; see --help)" >&2
      exit 2
      ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "svm-bench: --runs must be a positive number, not '$runs'" >&2; exit 2; }
[ ${#sides[@]} -gt 0 ] || sides=(svm kvm-amd pvm)
have_hypervisor() { [ -d "$root/hypervisor" ] && [ -f "$root/scripts/svm-run.sh" ]; }

make_work_dir

# --- build ---------------------------------------------------------------------------------

# The release axvm: the one scripts/kvm-amd.sh copies into L1, so both KVM sides run the
# same build. Its build also builds the guests (axvm-cli embeds the demo).
if [ "$build" = 1 ]; then
  say "building axvm (release) and the guests"
  build "axvm" "$root" cargo build --release -p axvm-cli
fi

axvm=$target_dir/release/axvm
images=$(guest_images release exitloop)
image=${images:+$images/exitloop}
if [ ! -x "$axvm" ] || [ -z "$image" ]; then
  say "no release axvm or exitloop image under $target_dir (build with: cargo build --release -p axvm-cli)" >&2
  exit 2
fi

# The case directory every side runs in: the guest's own config and its image beside it.
case_dir=$work/exitloop
mkdir -p "$case_dir"
cp "$root/guests/exitloop/exitloop.toml" "$image" "$case_dir/"

# --- figures -------------------------------------------------------------------------------

# per_exit_from_stats LINE: "exit statistics: N exits in T unit (...)" -> "N per-exit-us",
# T given by the report in ns, µs, ms or s.
per_exit_from_stats() {
  awk '{
    n = $3; t = $6; unit = $7
    if (unit == "ns") t /= 1000; else if (unit == "ms") t *= 1000; else if (unit == "s") t *= 1e6
    else if (unit != "µs") { print "unit?"; exit }
    printf "%d %.3f\n", n, t / n
  }' <<<"$1"
}

# summary VALUE...: "median min max" of the values (median of an even count: the mean of
# the middle two).
summary() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END {
      m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%.2f %.2f %.2f\n", m, v[1], v[NR]
    }'
}

# Table rows, "label|runs|exits|median|min|max|note", and whether a side failed.
rows=()
failed=0

# record LABEL NOTE FIGURE...: a row from "exits per-exit" figures, all of which must have
# made $expected_exits exits.
record() {
  local label=$1 note=$2 figure exits=() values=()
  shift 2
  for figure in "$@"; do
    exits+=("${figure%% *}")
    values+=("${figure##* }")
  done
  local odd
  odd=$(printf '%s\n' "${exits[@]}" | grep -vx "$expected_exits" || true)
  if [ -n "$odd" ]; then
    say "$label: a run made $(echo "$odd" | head -n 1) exits, not $expected_exits" >&2
    failed=1
  fi
  read -r median low high < <(summary "${values[@]}")
  rows+=("$label|$#|${exits[0]}|$median|$low|$high|$note")
}

skip() {
  rows+=("$1|0|-|-|-|-|$2")
  say "$1: skipped: $2"
}

# fail LABEL WHY: the side failed; WHY is said on stderr and in the table.
fail() {
  rows+=("$1|0|-|-|-|-|FAILED: $2 (details above)")
  say "$1: $2" >&2
  failed=1
}

# The type-1 hypervisor, $runs boots of QEMU TCG.
side_svm() {
  local label="type-1 hypervisor, QEMU TCG" i status line figures=()
  if ! have_hypervisor; then
    skip "$label" "pending: this tree has no hypervisor/ or scripts/svm-run.sh yet (issue 12)"
    return
  fi
  # Run 0 is a warm-up, not counted (page cache, QEMU's first start); it also builds the
  # hypervisor, which svm-run.sh does unless told --no-build.
  say "$label: one warm-up and $runs runs of scripts/svm-run.sh exitloop.toml exitloop"
  for i in $(seq 0 "$runs"); do
    local flags=(--no-build)
    [ "$i" != 0 ] || [ "$build" = 0 ] || flags=()
    set +e
    (cd "$case_dir" && bash "$root/scripts/svm-run.sh" "${flags[@]}" exitloop.toml exitloop \
      </dev/null >"$work/svm.$i.out" 2>"$work/svm.$i.err")
    status=$?
    set -e
    line=$(tr -d '\r' <"$work/svm.$i.out" | grep -a -E '^axvm-hv: vCPU 0: [0-9]+ exits in [0-9.]+ us, [0-9.]+ us per exit' | tail -n 1 || true)
    if [ "$status" != 0 ] || [ -z "$line" ]; then
      tr -d '\r' <"$work/svm.$i.out" | tail -n 20 | sed 's/^/  /' >&2
      tail -n 20 "$work/svm.$i.err" | sed 's/^/  /' >&2
      fail "$label" "run $i: exit status $status$([ -n "$line" ] || echo ", no 'axvm-hv: vCPU 0: ... per exit' line")"
      return
    fi
    if [ "$i" = 0 ]; then
      say "  warm-up: ${line#axvm-hv: }"
      continue
    fi
    # T / N from the line, as for the KVM sides (the hypervisor's own X is the same
    # division, rounded to one decimal).
    figures+=("$(awk '{ printf "%d %.3f\n", $4, $7 / $4 }' <<<"$line")")
    say "  run $i: ${line#axvm-hv: }"
  done
  record "$label" "timed by the hypervisor (axvm-hv line)" "${figures[@]}"
}

# Reads the `--stats` lines the runs printed ("svm-bench: run I status S: exit statistics:
# ..." from $1) into a row labelled $2.
record_stats_runs() {
  local log=$1 label=$2 note=$3 i status line figures=()
  for i in $(seq "$runs"); do
    line=$(tr -d '\r' <"$log" | grep -a "^svm-bench: run $i status " | tail -n 1 || true)
    status=$(sed -n 's/^svm-bench: run [0-9]* status \([0-9]*\):.*/\1/p' <<<"$line")
    line=${line#*: exit statistics}
    if [ "$status" != 0 ] || [[ $line != :* ]]; then
      tr -d '\r' <"$log" | tail -n 30 | sed 's/^/  /' >&2
      fail "$label" "run $i: ${status:+exit status $status, }no 'exit statistics' line"
      return
    fi
    line="exit statistics$line"
    say "  run $i: $line"
    figures+=("$(per_exit_from_stats "$line")")
  done
  record "$label" "$note" "${figures[@]}"
}

# The runs themselves, as a POSIX sh script (L1's shell is busybox): each prints its
# report's first line after "svm-bench: run I status S: ". Run 0 is a warm-up, not counted.
write_run_script() {
  cat >"$1" <<EOF
#!/bin/sh
# Written by scripts/svm-bench.sh: a warm-up and $runs runs of the exitloop guest under
# axvm --stats.
i=0
while [ \$i -le $runs ]; do
  axvm run --stats exitloop.toml </dev/null >run.out 2>&1
  status=\$?
  echo "svm-bench: run \$i status \$status: \$(grep -a '^exit statistics:' run.out | head -n 1)"
  [ \$status = 0 ] || cat run.out
  i=\$((i + 1))
done
EOF
}

# axvm on kvm_amd in L1: one boot of scripts/kvm-amd.sh's L1 running the mine step.
side_kvm_amd() {
  local label="axvm on kvm_amd in QEMU TCG (L1)" mine=$work/exitloop-mine status log
  mkdir -p "$mine"
  cp "$case_dir/exitloop.toml" "$case_dir/exitloop" "$mine/"
  write_run_script "$mine/run.sh"
  say "$label: one warm-up and $runs runs of axvm run --stats in L1 (KVM_AMD_MINE=$mine scripts/kvm-amd.sh --no-build mine)"
  set +e
  # --no-build: the release axvm is built above (or by the caller, with --no-build).
  KVM_AMD_MINE=$mine bash "$root/scripts/kvm-amd.sh" --no-build mine >"$work/kvm-amd.out" 2>&1
  status=$?
  set -e
  log=$target_dir/kvm-amd/logs/mine_$(basename "$mine").log
  if [ ! -f "$log" ] || [ "$log" -ot "$mine/run.sh" ]; then
    tail -n 30 "$work/kvm-amd.out" | sed 's/^/  /' >&2
    fail "$label" "scripts/kvm-amd.sh exited $status without a log of the mine step ($log)"
    return
  fi
  record_stats_runs "$log" "$label" "axvm run --stats: first exit to last"
}

# axvm on this machine's KVM.
side_pvm() {
  local label="axvm on this machine's KVM" module
  if [ ! -w /dev/kvm ]; then
    skip "$label" "no usable /dev/kvm"
    return
  fi
  # The vendor module that serves /dev/kvm (kvm_intel, kvm_amd, kvm_pvm), as sysfs lists it.
  module=$(find /sys/module -maxdepth 1 -name 'kvm_*' -printf '%f\n' 2>/dev/null | head -n 1 || true)
  label="$label${module:+ ($module)}"
  write_run_script "$work/pvm-run.sh"
  say "$label: one warm-up and $runs runs of axvm run --stats"
  (cd "$case_dir" && PATH=$(dirname "$axvm"):$PATH sh "$work/pvm-run.sh") >"$work/pvm.out" 2>&1 || true
  record_stats_runs "$work/pvm.out" "$label" "axvm run --stats: first exit to last"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for side in "${sides[@]}"; do
  case $side in
    svm) side_svm ;;
    kvm-amd) side_kvm_amd ;;
    pvm) side_pvm ;;
  esac
done

# --- the table -----------------------------------------------------------------------------

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=
if git -C "$root" status --porcelain 2>/dev/null | grep -q .; then dirty=" (with uncommitted changes)"; fi
echo
echo "exit round trip of guests/exitloop ($expected_exits exits a run), $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit$dirty"
echo "host load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-42s %4s %6s %11s %17s  %s\n' "host" "runs" "exits" "per exit" "range" "measured by"
for row in "${rows[@]}"; do
  IFS='|' read -r label n exits median low high note <<<"$row"
  if [ "$n" = 0 ]; then
    printf '%-42s %4s %6s %11s %17s  %s\n' "$label" "-" "-" "-" "-" "$note"
  else
    # One more byte of width where "µ" is: printf counts bytes, and it is two.
    printf '%-42s %4s %6s %12s %18s  %s\n' "$label" "$n" "$exits" "$median µs" "$low-$high µs" "$note"
  fi
done
exit $failed
