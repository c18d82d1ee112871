#!/bin/sh
# /init of the Debian kernel the kvm-amd harness boots as a guest (under axvm, and under
# QEMU for comparison). It looks at what a user would look at after a boot and prints one
# line per check, then ends the way /proc/cmdline says:
#   axvm.cpus=N       the vCPUs the VM has
#   axvm.mem_mib=M    the RAM the VM has, in MiB
#   axvm.end=poweroff|reboot
#   axvm.no_pci=1     the machine has no PCI (QEMU's microvm): the kernel's error saying
#                     so is expected
# Lines start with "linux-guest: ": "fact NAME=VALUE" for what the harness compares between
# VMMs, "dmesg-error TEXT" per kernel error, "ok"/"FAIL" per check, and last "all checks
# passed" or "N check(s) failed".
. /linux-guest.sh
end=$(arg end)
available=$(cat /sys/devices/system/clocksource/clocksource0/available_clocksource)
fact clocksource "$source"
check clocksource 'case $source in kvm-clock | tsc) true ;; *) false ;; esac' \
  "$source (available: $available)"

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
fact cpu_model "$model"
check cpu-model '[ -n "$model" ] && ! echo "$model" | grep -qE "^[0-9a-f]+/[0-9a-f]+$"' "$model"

# Platform errors: anything at KERN_ERR or worse, and the messages of known firmware gaps
# at any level, each as "dmesg-error TEXT" without its level and time. The harness judges
# them (scripts/lib/l1-report.py): a line the same kernel also prints under QEMU in the
# same L1 machine belongs to that machine's emulated CPU, any other fails the boot.
dmesg -r >/tmp/dmesg
no_pci='^$'
[ "$(arg no_pci)" = 1 ] && no_pci='PCI: Fatal: No config space access function found'
{
  grep -E '^<[0-3]>' /tmp/dmesg | grep -v "$no_pci"
  grep -E 'ACPI BIOS Error|ACPI Error|Unable to start the ACPI|i8042: Can.t|Call Trace|BUG:|WARNING: CPU:' /tmp/dmesg
} | sed 's/^<[0-9]*>\[ *[0-9.]*\] //' | sort -u >/tmp/errors
fact dmesg_errors "$(wc -l </tmp/errors)"
sed 's/^/linux-guest: dmesg-error /' /tmp/errors

acpi=$(grep -c 'ACPI: Interpreter enabled' /tmp/dmesg)
check acpi '[ "$acpi" = 1 ]' "ACPI interpreter enabled"

if [ "$failed" = 0 ]; then say "all checks passed"; else say "$failed check(s) failed"; fi
say "ending with $end"
case $end in
  reboot) reboot -f ;;
  *) poweroff -f ;;
esac
sleep 10
say "still running 10 s after $end"
