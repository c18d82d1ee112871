#!/bin/sh
# The start every Linux guest /init of the harnesses shares (scripts/kvm-amd/linux-init.sh,
# scripts/kvm-arm64/linux-init.sh source it as /linux-guest.sh): mounts, the "linux-guest: "
# lines (say, fact, check NAME CONDITION DETAIL, counted in $failed), the kernel command
# line's axvm.NAME=VALUE arguments (arg NAME), and the checks of every guest: as many CPUs
# online as axvm.cpus=N, and MemTotal within axvm.mem_mib=M; $source is the current
# clocksource, which each /init checks its own way.
# shellcheck disable=SC2034 # failed and the facts are the sourcing /init's
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say() { echo "linux-guest: $*"; }
say "fact uptime_at_init=$(cut -d' ' -f1 /proc/uptime)"

arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^axvm\.$1=//p"; }
cpus=$(arg cpus)
mem_mib=$(arg mem_mib)
failed=0
check() { # check NAME CONDITION DETAIL
  if eval "$2"; then say "ok   $1: $3"; else say "FAIL $1: $3"; failed=$((failed + 1)); fi
}

fact() { say "fact $1=$2"; }

online=$(grep -c '^processor' /proc/cpuinfo)
fact cpus "$online"
check cpus '[ "$online" = "$cpus" ] && [ "$(nproc)" = "$cpus" ]' \
  "$online CPU(s) in /proc/cpuinfo, nproc $(nproc), expected $cpus"

mem_kb=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
check memory '[ "$mem_kb" -le $((mem_mib * 1024)) ] && [ "$mem_kb" -ge $((mem_mib * 1024 * 3 / 4)) ]' \
  "MemTotal $mem_kb kB of $mem_mib MiB"

source=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
