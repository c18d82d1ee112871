#!/usr/bin/env bash
# svm-compat.sh: runs the same guests under axvm's two hosts, the KVM host (`axvm run` on
# this machine's /dev/kvm) and the type-1 SVM hypervisor (hypervisor/, booted by QEMU TCG
# with an emulated AMD SVM CPU), and compares what the guests print on their serial console
# and the status they exit with. One guest set, two hosts: the core, the devices (axvm-pc)
# and the image loading are the same code under both, and this script shows it.
#
# Usage: scripts/svm-compat.sh [--no-build] [--keep] [CASE...]
#
#   CASE        demo, realmode, rom, bios-start, sipi, wakeup, wakeup-smp, timer, multiboot
#               (default: all)
#   --no-build  use the axvm binary, guest images and hypervisor already built
#   --keep      keep the work directory (configs, consoles) and print its path
#
# Environment: SVM_TIMEOUT (seconds per hypervisor run, default 120, passed to
# scripts/svm-run.sh), CARGO_TARGET_DIR.
#
# Each case copies guests/<guest>/<config>.toml and the images it names into a directory of
# its own and runs, there,
#
#   axvm run <config>.toml                              (KVM)
#   scripts/svm-run.sh <config>.toml <images>           (QEMU -cpu EPYC + hypervisor)
#
# The wake-up cases need an interrupt injected from outside once the guest prints
# `wakeup: waiting for an interrupt`, which `axvm run` cannot do: under KVM they run
# `inject_after_line` (crates/axvm-kvm/examples, the KVM test's injection as a program:
# `AxVM::inject_interrupt_to_vcpu(&[0], 0x40)` 100 ms after the line), under the hypervisor
# the kernel command line `inject=0x40@0 after=wakeup: waiting for an interrupt` does the
# same (hypervisor/README.md). The timer guest prints how many PIT ticks it counted in one
# RTC second, which depends on where the second boundaries fall (99, 100, 101 under either
# host): that number is compared as `<n>`; the guest itself checks the rate (100 ± 25%)
# and prints `timer: rate OK`, which is compared as is.
#
# The hypervisor's own lines start with "axvm-hv: " and are left out of the comparison; so
# are carriage returns (the KVM host passes the guest's bytes through, QEMU's serial too, but
# a terminal may add them). A case passes when the remaining lines and the exit statuses are
# the same under both.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
script="svm-compat"
# shellcheck source=scripts/lib/common.sh
. "$root/scripts/lib/common.sh"
# name:guest directory:config:images:description
all_cases=(
  "demo:demo:demo:demo:2 vCPUs on 2 CPUs; MMIO, port widths, MSRs"
  "realmode:realmode:realmode:realmode:raw 16-bit image entered in real mode"
  "rom:rom:rom:rom:writes to a read-only region are dropped"
  "bios-start:biosboot:biosboot:biosboot bios-stub:the ArceOS hypervisor's BIOS start, its config unchanged"
  "sipi:sipi:sipi:sipi:vCPU 0 starts vCPU 1 with INIT-SIPI-SIPI through its local APIC"
  "wakeup:wakeup:wakeup:wakeup:a halted vCPU woken by a host-injected interrupt"
  "wakeup-smp:wakeup:wakeup-smp:wakeup:the injected wake-up, then a fixed IPI to a halted vCPU 1"
  "timer:timer:timer:timer:PIT at 100 Hz through IOAPIC pin 2, LAPIC timer, CMOS RTC seconds"
  "multiboot:multiboot:multiboot:multiboot ramdisk:Multiboot: info block, module, BDA, CMOS, fw_cfg, ACPI, 3 APs by INIT-SIPI-SIPI"
)
# The injection the wake-up cases need (see above).
wake_line="wakeup: waiting for an interrupt"


parse_options "$@"

cases=()
for spec in "${all_cases[@]}"; do
  name=${spec%%:*}
  if [ ${#wanted[@]} -eq 0 ] || [[ " ${wanted[*]} " == *" $name "* ]]; then
    cases+=("$spec")
  fi
done
for name in "${wanted[@]}"; do
  if [[ " ${all_cases[*]} " != *" $name:"* ]]; then
    say "unknown case '$name' (cases: demo realmode rom bios-start sipi wakeup wakeup-smp timer multiboot)" >&2
    exit 2
  fi
done

make_work_dir

if [ "$build" = 1 ]; then
  say "building axvm, the guests and the hypervisor"
  build "axvm and the guests" "$root" cargo build -p axvm-cli -p axvm-guests
  build "the injection example" "$root" cargo build -p axvm-kvm --example inject_after_line
  # In hypervisor/: its .cargo/config.toml (target, linker script) applies only there.
  build "the hypervisor" "$root/hypervisor" cargo build --release
fi

axvm=$target_dir/debug/axvm
injector=$target_dir/debug/examples/inject_after_line
images=$(guest_images debug demo)
if [ ! -x "$axvm" ] || [ ! -x "$injector" ] || [ -z "$images" ]; then
  say "no axvm binary, inject_after_line example or guest images under $target_dir (build with: cargo build -p axvm-cli -p axvm-guests && cargo build -p axvm-kvm --example inject_after_line)" >&2
  exit 2
fi

# The guest's lines: carriage returns and the hypervisor's own lines dropped, the timer's
# tick count as <n>.
guest_lines() {
  { tr -d '\r' <"$1" | grep -av '^axvm-hv: ' || true; } |
    sed -E 's/^timer: [0-9]+ ticks in one RTC second$/timer: <n> ticks in one RTC second/'
}

failed=0
for spec in "${cases[@]}"; do
  IFS=: read -r name guest config case_images what <<<"$spec"
  dir=$work/$name
  mkdir -p "$dir"
  cp "$root/guests/$guest/$config.toml" "$dir/"
  for image in $case_images; do cp "$images/$image" "$dir/"; done
  kvm=("$axvm" run "$config.toml")
  append=()
  if [ "$guest" = wakeup ]; then
    kvm=("$injector" "$config.toml" 0x40@0 "$wake_line")
    append=(--append "inject=0x40@0 after=$wake_line")
  fi
  set +e
  (cd "$dir" && "${kvm[@]}" </dev/null >kvm.out 2>kvm.err)
  kvm_status=$?
  # A CPU per vCPU: the hypervisor runs vCPU i on CPU i.
  cpus=$(sed -nE 's/^cpu_num *= *([0-9]+).*/\1/p' "$dir/$config.toml")
  # shellcheck disable=SC2086 # the images are words
  (cd "$dir" && bash "$root/scripts/svm-run.sh" --no-build --smp "${cpus:-1}" "${append[@]}" "$config.toml" $case_images </dev/null >svm.out 2>svm.err)
  svm_status=$?
  set -e
  guest_lines "$dir/kvm.out" >"$dir/kvm.lines"
  guest_lines "$dir/svm.out" >"$dir/svm.lines"
  if [ "$kvm_status" = "$svm_status" ] && cmp -s "$dir/kvm.lines" "$dir/svm.lines" && [ -s "$dir/kvm.lines" ]; then
    say "$name ($what): same $(wc -l <"$dir/kvm.lines") lines, exit $kvm_status under both"
  else
    failed=1
    say "$name ($what): DIFFERENT: KVM exit $kvm_status, SVM hypervisor exit $svm_status"
    diff -u --label "KVM (axvm run)" --label "SVM hypervisor (QEMU TCG)" "$dir/kvm.lines" "$dir/svm.lines" | sed 's/^/  /' || true
    echo "  --- KVM stderr:"; sed 's/^/  /' "$dir/kvm.err" | tail -n 20
    echo "  --- hypervisor console and svm-run.sh stderr:"; tr -d '\r' <"$dir/svm.out" | grep -a '^axvm-hv: ' | sed 's/^/  /' | tail -n 40 || true
    sed 's/^/  /' "$dir/svm.err" | tail -n 20
  fi
done
exit $failed
