#!/usr/bin/env bash
# svm-run.sh: runs a VM under axvm's type-1 hypervisor kernel (hypervisor/) in QEMU with AMD
# SVM emulated (TCG, `-cpu EPYC`), and exits with the guest's status.
#
# Usage: scripts/svm-run.sh [--no-build] [--smp N] [--append TEXT] CONFIG IMAGE [IMAGE...]
#
#   CONFIG      the VM's TOML config (the axvm/ArceOS format), the first Multiboot module
#   IMAGE       guest images, the next modules, in order
#   --no-build  use the kernel already built
#   --smp N     physical CPUs of the emulated machine (default 2, or SVM_SMP)
#   --append TEXT  the kernel's command line (QEMU -append), e.g.
#               "inject=0x40@0 after=wakeup: waiting for an interrupt" (hypervisor/README.md)
#
# Environment: QEMU (default qemu-system-x86_64), SVM_TIMEOUT (seconds, default 120),
# SVM_SMP, SVM_MEM (default 512M), CARGO_TARGET_DIR.
#
# QEMU runs in CONFIG's directory, so a module's name (its Multiboot string, what the
# kernel's `boot::modules()` reports) is CONFIG's file name and each IMAGE's path relative to
# that directory (its plain file name when it lies next to the config). Paths with commas
# cannot be modules (`-initrd` splits at commas) and are refused.
#
# QEMU's warnings about EPYC features TCG lacks are filtered from stderr (one of them matters
# to the vCPU: TCG has no NRIP save, CPUID 0x8000_000A EDX bit 3; the kernel prints what each
# CPU has).
#
# Exit status: the status the guest (or the kernel) wrote to isa-debug-exit. QEMU exits with
# (s << 1) | 1, truncated to 8 bits by the OS, so only the low 7 bits of s come through: the
# kernel's panic/exception status 0xfe arrives as 126 (0x7e), which this script names. 124:
# timeout. 125: QEMU ended some other way (a reset or triple fault under -no-reboot, a QEMU
# error), said on stderr.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
qemu=${QEMU:-qemu-system-x86_64}
timeout_secs=${SVM_TIMEOUT:-120}
smp=${SVM_SMP:-2}
mem=${SVM_MEM:-512M}
build=1
append=()

usage() {
    echo "usage: $0 [--no-build] [--smp N] [--append KERNEL-CMDLINE] CONFIG IMAGE [IMAGE...]" >&2
    exit 2
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --no-build) build=0; shift ;;
        --smp) [[ $# -ge 2 ]] || usage; smp=$2; shift 2 ;;
        --append) [[ $# -ge 2 ]] || usage; append=(-append "$2"); shift 2 ;;
        --help|-h) usage ;;
        --) shift; break ;;
        -*) echo "svm-run: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[[ $# -ge 2 ]] || usage
[[ $smp =~ ^[1-9][0-9]*$ ]] || { echo "svm-run: --smp wants a CPU count, not '$smp'" >&2; exit 2; }

config=$(realpath "$1")
shift
[[ -f $config ]] || { echo "svm-run: no config file $config" >&2; exit 2; }
config_dir=$(dirname "$config")
modules=$(basename "$config")
for image in "$@"; do
    [[ -f $image ]] || { echo "svm-run: no image file $image" >&2; exit 2; }
    module=$(realpath --relative-to="$config_dir" "$image")
    [[ $module != *,* ]] || { echo "svm-run: $module: a module path cannot hold a comma (-initrd splits there)" >&2; exit 2; }
    modules+=",$module"
done

target_dir=${CARGO_TARGET_DIR:-$repo/hypervisor/target}
[[ $target_dir = /* ]] || target_dir=$repo/hypervisor/$target_dir
kernel=$target_dir/x86_64-unknown-none/release/axvm-hypervisor
if [[ $build = 1 ]]; then
    # In hypervisor/: its .cargo/config.toml (target, linker script) applies only there.
    (cd "$repo/hypervisor" && cargo build --release -j2 >&2)
fi
[[ -f $kernel ]] || { echo "svm-run: no kernel at $kernel (build it, or drop --no-build)" >&2; exit 2; }

set +e
(cd "$config_dir" && timeout "$timeout_secs" "$qemu" -accel tcg -cpu EPYC -smp "$smp" -m "$mem" \
    -nodefaults -no-reboot -serial stdio -display none -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "$kernel" -initrd "$modules" "${append[@]}" \
    2> >(grep -v "TCG doesn't support requested feature" >&2))
rc=$?
set -e

if [[ $rc = 124 ]]; then
    echo "svm-run: timed out after ${timeout_secs}s (SVM_TIMEOUT)" >&2
    exit 124
fi
if (( rc % 2 == 1 )); then
    status=$(( rc >> 1 ))
    if [[ $status = 126 ]]; then
        echo "svm-run: exit status 126 (0x7e): the hypervisor's panic/exception status 0xfe, or a guest's 0x7e/0xfe" >&2
    fi
    exit "$status"
fi
if [[ $rc = 0 ]]; then
    echo "svm-run: QEMU exited 0 without the exit port: the machine reset (a triple fault, under -no-reboot) or powered off" >&2
else
    echo "svm-run: QEMU failed with status $rc (not from the exit port)" >&2
fi
exit 125
