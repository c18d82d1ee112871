#!/usr/bin/env bash
# run.sh: runs axvm-svm's SvmVCpu with real VMRUNs under QEMU (TCG, -cpu EPYC): a scratch
# copy of the hypervisor kernel (hypervisor/ at git revision KERNEL_REV, default HEAD) gets
# smoke/vmm.rs as its `vmm` module and this checkout's crates/axvm and crates/axvm-svm as
# dependencies; the guests (*.S) are assembled with GNU as. The repository is not changed.
#
# Usage: crates/axvm-svm/smoke/run.sh [KERNEL_REV]
# Environment: SMOKE_DIR (scratch directory, default /tmp/axvm-svm-smoke, kept for faster
# rebuilds), QEMU (default qemu-system-x86_64), SVM_TIMEOUT (seconds, default 120).
#
# Exit status: 0 when every check passed, 1 when one failed (the console says which),
# 2 for a usage or build problem, 124 on timeout, 125 when QEMU ended without the exit port.
set -euo pipefail

smoke=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$smoke" rev-parse --show-toplevel)
rev=${1:-HEAD}
work=${SMOKE_DIR:-/tmp/axvm-svm-smoke}
qemu=${QEMU:-qemu-system-x86_64}

git -C "$repo" rev-parse --verify --quiet "$rev^{commit}" >/dev/null ||
    { echo "run.sh: no git revision '$rev' holding hypervisor/ (give one as the argument)" >&2; exit 2; }
mkdir -p "$work"
rm -rf "$work/hypervisor/src"
git -C "$repo" archive "$rev" hypervisor | tar -x -C "$work"
kernel_dir=$work/hypervisor
# The kernel's path dependencies point at this checkout's crates.
sed -i -E "s|path = \"\\.\\./crates/|path = \"$repo/crates/|" "$kernel_dir/Cargo.toml"
cp "$smoke/vmm.rs" "$kernel_dir/src/vmm/mod.rs"
for guest in real long spin irq sipi; do
    as --64 -o "$work/$guest.o" "$smoke/$guest.S"
    objcopy -O binary -j .text "$work/$guest.o" "$kernel_dir/src/vmm/$guest.bin"
done
(cd "$kernel_dir" && cargo build --release -j2 >&2) || exit 2

set +e
timeout "${SVM_TIMEOUT:-120}" "$qemu" -accel tcg -cpu EPYC -smp 2 -m 512M -nodefaults \
    -no-reboot -serial stdio -display none -monitor none \
    -device isa-debug-exit,iobase=0xf4,iosize=4 \
    -kernel "$kernel_dir/target/x86_64-unknown-none/release/axvm-hypervisor" \
    2> >(grep -v "TCG doesn't support requested feature" >&2)
rc=$?
set -e
case $rc in
    124) echo "run.sh: timed out" >&2; exit 124 ;;
    1) exit 0 ;; # the kernel wrote 0 to isa-debug-exit: (0 << 1) | 1
    3) exit 1 ;;
    *) echo "run.sh: QEMU ended with status $rc (not the exit port)" >&2; exit 125 ;;
esac
