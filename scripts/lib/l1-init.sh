#!/bin/sh
# /init of the L1 machine a harness (scripts/kvm-amd.sh, scripts/kvm-arm64.sh) boots under
# QEMU TCG: runs the steps listed in /harness/steps ("name command" a line; the first loads
# or checks KVM) and powers the machine off. Every step is framed on the console by
#   @@@ BEGIN <step>          and          @@@ END <step> <exit status> <seconds>
# which the harness turns into per-step logs and its pass/fail. The harness writes its name
# to /harness/name ("kvm-amd"), how long a step may take to /harness/step-seconds, and what
# runs L1 to /harness/l0 ("qemu-tcg 7.2.22"), exported as <NAME>_L0 (KVM_AMD_L0) for tests
# whose outcome depends on it.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /tmp /run && mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /run
ln -sf /proc/self/fd /dev/fd
name=$(cat /harness/name)
hostname "$name-l1"
ip link set lo up 2>/dev/null
export HOME=/root TMPDIR=/tmp AXVM_REQUIRE_KVM=1 RUST_BACKTRACE=1
mkdir -p "$HOME"
cd /harness || exit 1
l0_var=$(echo "$name" | tr 'a-z-' 'A-Z_')_L0
export "$l0_var=$(cat /harness/l0 2>/dev/null)"
step_seconds=$(cat /harness/step-seconds)

now() { cut -d' ' -f1 /proc/uptime; }

# step NAME COMMAND...: runs one framed step, stopped after step_seconds (status 143).
step() {
  name=$1
  shift
  echo "@@@ BEGIN $name"
  start=$(now)
  timeout "$step_seconds" "$@" </dev/null 2>&1
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
