#!/bin/sh
# /init of the L1 machine the kvm-arm64 harness boots under QEMU TCG (-M virt with EL2,
# GICv3): Debian's arm64 kernel, built with KVM, runs /dev/kvm in VHE mode. Runs the steps
# listed in /harness/steps ("name command" a line; the first checks /dev/kvm) and powers the
# machine off. Every step is framed on the console by
#   @@@ BEGIN <step>          and          @@@ END <step> <exit status> <seconds>
# which scripts/kvm-arm64.sh turns into per-step logs and its pass/fail.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run && mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /run
ln -sf /proc/self/fd /dev/fd
hostname kvm-arm64-l1
ip link set lo up 2>/dev/null
export HOME=/root TMPDIR=/tmp AXVM_REQUIRE_KVM=1 RUST_BACKTRACE=1
mkdir -p "$HOME"
cd /harness || exit 1
# What runs this L1 ("qemu-tcg 7.2.22"), for tests whose outcome depends on it.
KVM_ARM64_L0=$(cat /harness/l0 2>/dev/null)
export KVM_ARM64_L0

now() { cut -d' ' -f1 /proc/uptime; }

# step NAME COMMAND...: runs one framed step, stopped after 10 minutes (status 143): an
# arm64 Linux guest under KVM inside TCG boots in minutes, not seconds.
step() {
  name=$1
  shift
  echo "@@@ BEGIN $name"
  start=$(now)
  timeout 600 "$@" </dev/null 2>&1
  status=$?
  echo "@@@ END $name $status $(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
}

while read -r name command; do
  case $name in '' | '#'*) continue ;; esac
  step "$name" sh -c "$command"
done <steps
echo "@@@ DONE"
sync
poweroff -f
