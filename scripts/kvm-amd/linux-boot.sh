#!/bin/sh
# linux-boot.sh CPUS END [VMM]: inside the kvm-amd harness's L1 machine, boots the Debian
# kernel with linux-init.sh as its /init under axvm (VMM axvm, the default; axvm-stats adds
# --stats) or QEMU with KVM (VMM qemu-pc or qemu-microvm), with CPUS vCPUs and 256 MiB, and
# checks that the guest's checks passed and that its END (poweroff or reboot) stopped the VM
# with status 0. Prints the guest's console, then one "linux-boot:" verdict line with the
# times.
cpus=$1
end=$2
vmm=${3:-axvm}
mem_mib=256
cd /harness/linux || exit 1
cmdline="console=ttyS0 axvm.cpus=$cpus axvm.mem_mib=$mem_mib axvm.end=$end"
machine=pc
# microvm has no PCI: the kernel is told so, and its KERN_ERR that it found no PCI access
# method is expected (axvm.no_pci, see linux-init.sh).
[ "$vmm" = qemu-microvm ] && machine=microvm && cmdline="$cmdline pci=off axvm.no_pci=1"
stats=
[ "$vmm" = axvm-stats ] && stats=--stats

# boot ATTEMPT: one boot, its console in $log; prints the console and a verdict line.
# Returns 0 when it passed, 1 when the guest ran to its end but a check failed, and 2 when
# the VM stopped before the guest's end (a hang, a triple fault).
boot() {
  log=/tmp/linux-$vmm-$cpus-$end.$1.log
  start=$(cut -d' ' -f1 /proc/uptime)
  case $vmm in
    axvm | axvm-stats)
      sed -e "s/@CPUS@/$cpus/" -e "s/@CMDLINE@/$cmdline/" vm.toml.in >"/tmp/linux-$cpus.toml"
      cp vmlinuz initramfs.cpio.gz /tmp/
      # The watchdog turns a hang into a report of every vCPU's state (a boot prints all
      # along); the timeout ends what the watchdog cannot, in time to print the log.
      timeout 110 axvm run --watchdog 40 $stats "/tmp/linux-$cpus.toml" >"$log" 2>&1
      status=$?
      ;;
    qemu-pc | qemu-microvm)
      # -no-reboot turns the guest's reboot into a QEMU exit with status 0, like axvm's.
      timeout 110 qemu-system-x86_64 -accel kvm -cpu host -M "$machine" -smp "$cpus" \
        -m "$mem_mib" -nographic -no-reboot -monitor none -nodefaults -serial stdio \
        -kernel vmlinuz -initrd initramfs.cpio.gz -append "$cmdline" >"$log" 2>&1
      status=$?
      ;;
  esac
  seconds=$(awk -v a="$start" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
  cat "$log"
  at_init=$(sed -n 's/^linux-guest: fact uptime_at_init=//p' "$log" | tr -d '\r')
  times="/init at ${at_init:-?} s of guest uptime, $seconds s from start to stop"
  if [ "$status" = 0 ] && grep -q '^linux-guest: all checks passed' "$log"; then
    echo "linux-boot: $vmm $cpus vCPU(s) $end: passed; $times"
    return 0
  fi
  echo "linux-boot: $vmm $cpus vCPU(s) $end: FAILED (status $status); $times"
  grep -q "^linux-guest: ending with $end" "$log" && return 1
  return 2
}

# A boot that stops before the guest's end is tried once more: in this nested machine the
# same kernel now and then hangs under QEMU too (its emulated SVM loses an interrupt). A
# check that fails, or a second stop, fails the step; the first stop stays in the log.
boot 1
result=$?
if [ "$result" = 2 ]; then
  echo "linux-boot: $vmm $cpus vCPU(s) $end: RETRIED: the first boot stopped before the guest's end"
  boot 2
  result=$?
fi
[ "$result" = 0 ]
