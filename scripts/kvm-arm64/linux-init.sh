#!/bin/sh
# shellcheck disable=SC2016 # check evaluates each CONDITION, written in single quotes
# /init of the Debian arm64 kernel the kvm-arm64 harness boots as a guest (under axvm, and
# under QEMU -M virt for comparison). It looks at what a user would look at after a boot and
# prints one line per check, then powers off (poweroff -f: PSCI SYSTEM_OFF, after which the
# VMM exits with status 0). /proc/cmdline says what the machine should be:
#   axvm.cpus=N       the vCPUs the VM has
#   axvm.mem_mib=M    the RAM the VM has, in MiB
# Lines start with "linux-guest: ": "fact NAME=VALUE" for what the harness compares between
# VMMs, "dmesg-error TEXT" per kernel error, "harmless TEXT (REASON)" per known-harmless
# one, "ok"/"FAIL" per check, and last "all checks passed" or "N check(s) failed".
. /linux-guest.sh
fact clocksource "$source"
check clocksource '[ "$source" = arch_sys_counter ]' "$source"

# The MIDR fields of the first CPU: KVM gives every vCPU the host CPU's, under both VMMs.
model=$(sed -n 's/^CPU \(implementer\|architecture\|variant\|part\|revision\)[[:space:]]*: /\1 /p' \
  /proc/cpuinfo | head -n 5 | tr '\n' ' ' | sed 's/ $//')
fact cpu_model "$model"
check cpu-model '[ -n "$model" ]' "$model"

# The arch timer's interrupts (the virtual timer, PPI 27, under KVM) summed over the CPUs,
# a second apart: a guest whose timer does not fire would not even have come this far
# unless it fell back to something else, so this looks at the timer itself.
timer_ticks() {
  awk '/arch_timer/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) sum += $i } END { print sum + 0 }' \
    /proc/interrupts
}
grep -E 'arch_timer|CPU0' /proc/interrupts | sed 's/^/linux-guest: interrupts: /'
before=$(timer_ticks)
sleep 1
after=$(timer_ticks)
check arch-timer '[ "$after" -gt "$before" ]' "arch_timer interrupts $before, a second later $after"

# Kernel errors: anything at KERN_ERR or worse, and warnings, bugs and call traces at any
# level, each as "dmesg-error TEXT" without its level and time, unless it is one of the
# known-harmless lines below (each with why it is harmless), reported as "harmless".
# The harness also compares them with the same kernel's under QEMU in the same L1 machine
# (scripts/lib/l1-report.py). One "EXTENDED-REGEX|reason" a line; none so far: Debian's 6.1
# kernel prints no such line under QEMU -accel kvm -M virt nor under axvm in this L1.
harmless() {
  cat <<'EOF'
EOF
}
dmesg -r >/tmp/dmesg
{
  grep -E '^<[0-3]>' /tmp/dmesg
  grep -iE 'WARNING|BUG:|Call trace|error' /tmp/dmesg
} | sed 's/^<[0-9]*>\[ *[0-9.]*\] //' | sort -u >/tmp/lines
: >/tmp/errors
while IFS= read -r line; do
  reason=$(harmless | while IFS='|' read -r pattern why; do
    if echo "$line" | grep -qE "$pattern"; then
      echo "$why"
      break
    fi
  done)
  if [ -n "$reason" ]; then say "harmless $line ($reason)"; else echo "$line" >>/tmp/errors; fi
done </tmp/lines
fact dmesg_errors "$(wc -l </tmp/errors)"
sed 's/^/linux-guest: dmesg-error /' /tmp/errors
check dmesg '[ ! -s /tmp/errors ]' "$(wc -l </tmp/errors) kernel error line(s) not known to be harmless"

if [ "$failed" = 0 ]; then say "all checks passed"; else say "$failed check(s) failed"; fi
say "ending with poweroff"
poweroff -f
sleep 10
say "still running 10 s after poweroff"
